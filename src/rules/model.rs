//! A rule as stored: the row of `martdb.rules`, checked before it is kept.

use serde::{Deserialize, Serialize};

use super::RuleError;
use super::condition::Condition;
use super::pattern::Pattern;

/// One Event-Condition-Action rule, as a row of `martdb.rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Chosen by the user; unique.
    pub id: i64,
    pub name: String,
    /// Assigned by the store: 1 when created, one more at every change.
    pub version: i64,
    pub enabled: bool,
    /// Higher first, within a group whose policy is `first`; ties go to the lower id.
    pub priority: i32,
    /// The rule's group: its conflict policy applies among the rules of one group.
    pub group: String,
    pub policy: Policy,
    /// The events the rule looks at (the `event_type` column); None means every event.
    pub event_type: Option<String>,
    /// A SQL boolean expression over event and profile columns; None means always.
    pub condition: Option<String>,
    /// A window pattern over the user's events (see [`Pattern`]).
    pub pattern: Option<String>,
    pub action: ActionKind,
    /// The action's parameters: a JSON object (`pool` for a coupon, `channel` and
    /// `template` for a message, `state` for a state change, anything else is kept).
    pub params: String,
    /// At most `count` actions on the rule's channel per user within `window`.
    pub cap: Option<FrequencyCap>,
    /// The rule applies to events at or after this time (microseconds since the epoch).
    pub valid_from: Option<i64>,
    /// The rule applies to events before this time.
    pub valid_until: Option<i64>,
    /// When this version was stored (microseconds since the epoch).
    pub updated_at: i64,
}

/// What happens when a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Reserve a coupon of `params.pool` for the user (idempotent per event and rule).
    Coupon,
    /// Queue a message on `params.channel` in the outbox.
    Message,
    /// Move the user to the lifecycle state `params.state` (queued in the outbox).
    State,
    /// Only report the match.
    Emit,
}

impl ActionKind {
    pub const ALL: [ActionKind; 4] = [
        ActionKind::Coupon,
        ActionKind::Message,
        ActionKind::State,
        ActionKind::Emit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Coupon => "coupon",
            ActionKind::Message => "message",
            ActionKind::State => "state",
            ActionKind::Emit => "emit",
        }
    }

    pub fn parse(text: &str) -> Option<ActionKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// How the matching rules of one group share an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Every matching rule fires.
    #[default]
    All,
    /// Only the matching rule of highest priority fires (lowest id among equals).
    First,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::All => "all",
            Policy::First => "first",
        }
    }

    pub fn parse(text: &str) -> Option<Policy> {
        match text {
            "all" => Some(Policy::All),
            "first" => Some(Policy::First),
            _ => None,
        }
    }
}

/// `count/window`, e.g. `1/1d`: at most `count` actions per user on a channel within any
/// `window` (inclusive at both ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FrequencyCap {
    pub count: u32,
    pub window_micros: i64,
}

impl FrequencyCap {
    pub fn parse(text: &str) -> Result<FrequencyCap, String> {
        let bad = || format!("frequency cap '{text}' is not of the form COUNT/DURATION, e.g. 1/1d");
        let (count, window) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!(
                "frequency cap '{text}': the count must be at least 1"
            ));
        }
        Ok(FrequencyCap {
            count,
            window_micros: parse_duration(window.trim())?,
        })
    }
}

impl std::fmt::Display for FrequencyCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.count, format_duration(self.window_micros))
    }
}

const MICROS: [(char, i64); 4] = [
    ('d', 86_400_000_000),
    ('h', 3_600_000_000),
    ('m', 60_000_000),
    ('s', 1_000_000),
];

/// `30m`, `2h`, `1d`, `45s`: a whole number and a unit.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("'{text}' is not a duration (a whole number and s, m, h or d: 30m)");
    let unit = text.chars().last().ok_or_else(bad)?;
    let per = MICROS
        .iter()
        .find(|(u, _)| *u == unit.to_ascii_lowercase())
        .ok_or_else(bad)?
        .1;
    let number: i64 = text[..text.len() - unit.len_utf8()]
        .trim()
        .parse()
        .map_err(|_| bad())?;
    if number <= 0 {
        return Err(format!("duration '{text}' must be positive"));
    }
    number.checked_mul(per).ok_or_else(bad)
}

pub(crate) fn format_duration(micros: i64) -> String {
    for (unit, per) in MICROS {
        if micros % per == 0 {
            return format!("{}{unit}", micros / per);
        }
    }
    format!("{}s", micros as f64 / 1e6)
}

impl Rule {
    /// A rule with defaults for everything but its id, action and condition.
    pub fn new(id: i64, action: ActionKind) -> Rule {
        Rule {
            id,
            name: format!("rule {id}"),
            version: 0,
            enabled: true,
            priority: 0,
            group: "default".into(),
            policy: Policy::All,
            event_type: None,
            condition: None,
            pattern: None,
            action,
            params: "{}".into(),
            cap: None,
            valid_from: None,
            valid_until: None,
            updated_at: 0,
        }
    }

    /// The channel that frequency caps count on: `params.channel`, else the action kind.
    pub fn channel(&self) -> String {
        self.params_json()
            .ok()
            .and_then(|p| {
                p.get("channel")
                    .and_then(|c| c.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| self.action.as_str().to_string())
    }

    pub(crate) fn params_json(&self) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        match serde_json::from_str::<serde_json::Value>(&self.params) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err("action_params must be a JSON object".into()),
            Err(e) => Err(format!("action_params is not valid JSON: {e}")),
        }
    }

    /// Checks everything that does not need an event schema: the condition's syntax, the
    /// pattern, the action's parameters, the validity window.
    pub fn check(&self) -> Result<(), RuleError> {
        let bad = |message: String| RuleError::BadRule {
            id: self.id,
            message,
        };
        if self.name.trim().is_empty() {
            return Err(bad("the name is empty".into()));
        }
        if let Some(condition) = &self.condition {
            Condition::parse(condition).map_err(|e| bad(format!("condition: {e}")))?;
        }
        if let Some(pattern) = &self.pattern {
            let pattern = Pattern::parse(pattern).map_err(|e| bad(format!("pattern: {e}")))?;
            if let (Some(own), Some(trigger)) = (&self.event_type, pattern.trigger_type())
                && own != trigger
            {
                return Err(bad(format!(
                    "pattern: it ends with '{trigger}' events but the rule's event_type is '{own}'"
                )));
            }
        }
        let params = self.params_json().map_err(bad)?;
        let text = |key: &str| params.get(key).and_then(|v| v.as_str());
        match self.action {
            ActionKind::Coupon if text("pool").is_none() => {
                return Err(bad(
                    "a coupon action needs action_params {\"pool\": \"<pool name>\"}".into(),
                ));
            }
            ActionKind::Message if text("channel").is_none() => {
                return Err(bad(
                    "a message action needs action_params {\"channel\": \"sms\", ...}".into(),
                ));
            }
            ActionKind::State if text("state").is_none() => {
                return Err(bad(
                    "a state action needs action_params {\"state\": \"<state name>\"}".into(),
                ));
            }
            _ => {}
        }
        if let (Some(from), Some(until)) = (self.valid_from, self.valid_until)
            && from >= until
        {
            return Err(bad("valid_from must be before valid_until".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_caps_parse_and_print() {
        assert_eq!(parse_duration("30m").unwrap(), 30 * 60_000_000);
        assert_eq!(parse_duration("1D").unwrap(), 86_400_000_000);
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5w").is_err());
        let cap = FrequencyCap::parse("2/12h").unwrap();
        assert_eq!(cap.count, 2);
        assert_eq!(cap.to_string(), "2/12h");
        assert!(FrequencyCap::parse("0/1d").is_err());
        assert!(FrequencyCap::parse("1d").is_err());
    }

    #[test]
    fn check_names_the_rule_and_the_problem() {
        let mut rule = Rule::new(7, ActionKind::Coupon);
        let err = rule.check().unwrap_err().to_string();
        assert!(err.contains("rule 7") && err.contains("pool"), "{err}");
        rule.params = r#"{"pool": "spring"}"#.into();
        rule.condition = Some("amount > ".into());
        let err = rule.check().unwrap_err().to_string();
        assert!(err.contains("rule 7") && err.contains("condition"), "{err}");
        rule.condition = Some("amount > 100 AND level >= 5".into());
        rule.check().unwrap();
        assert_eq!(rule.channel(), "coupon");
    }
}
