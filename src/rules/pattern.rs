//! Window patterns: counts and sequences of a user's events within a time window,
//! optionally followed by the absence of another event.
//!
//! ```text
//! times(3) of view with same category within 30m and not followed by order
//! sequence(view, cart) within 1h and not followed by order within 2h
//! not followed by order within 2h
//! ```
//!
//! Semantics, per user (and per value of the `with same` columns, which every event of
//! the pattern shares, the absent one included). Events are ordered by time, then by
//! event id; "counted" events are those of the rule's event type whose condition holds.
//!
//! - `times(N) [of T] within D` matches at a counted event `e` when at least `N` counted
//!   events, `e` and the ones before it, lie in `[e.ts - D, e.ts]` (both ends
//!   inclusive: events exactly `D` apart are within `D`). Every such event matches: a
//!   fourth view within the window matches again (frequency caps stop repeats).
//! - `sequence(T1, ..., Tn) within D` matches at a counted event `e` of type `Tn` when
//!   events of types `T1, ..., Tn-1` occur in that order before it, the first at or
//!   after `e.ts - D`. Only the last step is a counted event; the others need their type.
//! - `and not followed by A [within W]` (W defaults to D) holds when no event of type `A`
//!   has its time in `[e.ts, e.ts + W]` (an `A` at the same instant follows; one at
//!   exactly `e.ts + W` does too). The match fires at `e.ts + W`, once the input has
//!   shown an event later than that (the watermark): before, it is pending.
//! - `not followed by A within W` alone is the absence after any counted event
//!   (`times(1)` with nothing more to count).
//!
//! A match is a pure function of the set of events and the watermark, so the order in
//! which events arrive does not change which matches exist; the incremental matcher
//! gets the same answer as the batch one for events that arrive before the watermark
//! passes the deadlines they could change.

use super::model::{format_duration, parse_duration};

/// A parsed window pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub shape: Shape,
    /// Columns whose values the events of one match share.
    pub same: Vec<String>,
    pub within_micros: i64,
    pub absent: Option<Absence>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// `times(N) [of T]`.
    Count { times: u32, of: Option<String> },
    /// `sequence(T1, ..., Tn)`.
    Sequence { steps: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absence {
    pub event_type: String,
    pub within_micros: i64,
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let (Shape::Count { times: 1, of: None }, 0, Some(a)) =
            (&self.shape, self.within_micros, &self.absent)
        {
            return write!(
                f,
                "not followed by {} within {}",
                a.event_type,
                format_duration(a.within_micros)
            );
        }
        match &self.shape {
            Shape::Count { times, of } => {
                write!(f, "times({times})")?;
                if let Some(of) = of {
                    write!(f, " of {of}")?;
                }
            }
            Shape::Sequence { steps } => write!(f, "sequence({})", steps.join(", "))?,
        }
        if !self.same.is_empty() {
            write!(f, " with same {}", self.same.join(", "))?;
        }
        write!(f, " within {}", format_duration(self.within_micros))?;
        if let Some(a) = &self.absent {
            write!(
                f,
                " and not followed by {} within {}",
                a.event_type,
                format_duration(a.within_micros)
            )?;
        }
        Ok(())
    }
}

struct Words<'a> {
    tokens: Vec<&'a str>,
    at: usize,
}

impl<'a> Words<'a> {
    fn new(text: &'a str) -> Self {
        let mut tokens = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            let word = c.is_alphanumeric() || c == '_' || c == '.';
            match (word, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    tokens.push(&text[s..i]);
                    start = None;
                }
                _ => {}
            }
            if !word && !c.is_whitespace() {
                tokens.push(&text[i..i + c.len_utf8()]);
            }
        }
        if let Some(s) = start {
            tokens.push(&text[s..]);
        }
        Words { tokens, at: 0 }
    }

    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.at).copied()
    }

    fn next(&mut self, what: &str) -> Result<&'a str, String> {
        let token = self
            .peek()
            .ok_or_else(|| format!("expected {what}, found the end"))?;
        self.at += 1;
        Ok(token)
    }

    fn keyword(&mut self, word: &str) -> Result<(), String> {
        let token = self.next(&format!("'{word}'"))?;
        if token.eq_ignore_ascii_case(word) {
            Ok(())
        } else {
            Err(format!("expected '{word}', found '{token}'"))
        }
    }

    fn is(&self, word: &str) -> bool {
        self.peek().is_some_and(|t| t.eq_ignore_ascii_case(word))
    }

    fn name(&mut self, what: &str) -> Result<String, String> {
        let token = self.next(what)?;
        if token
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            Ok(token.to_string())
        } else {
            Err(format!("expected {what}, found '{token}'"))
        }
    }

    fn duration(&mut self) -> Result<i64, String> {
        parse_duration(self.next("a duration such as 30m")?)
    }
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut w = Words::new(text);
        if w.is("not") {
            let absent = Self::absence(&mut w, None)?;
            if let Some(extra) = w.peek() {
                return Err(format!("unexpected '{extra}' at the end of the pattern"));
            }
            return Ok(Pattern {
                shape: Shape::Count { times: 1, of: None },
                same: Vec::new(),
                within_micros: 0,
                absent: Some(absent),
            });
        }
        let head = w
            .next("times(N), sequence(...) or not followed by")?
            .to_ascii_lowercase();
        let shape = match head.as_str() {
            "times" => {
                w.keyword("(")?;
                let n = w.next("a count")?;
                let times: u32 =
                    n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        format!("times({n}): the count must be a whole number >= 1")
                    })?;
                w.keyword(")")?;
                let of = if w.is("of") {
                    w.keyword("of")?;
                    Some(w.name("an event type")?)
                } else {
                    None
                };
                Shape::Count { times, of }
            }
            "sequence" => {
                w.keyword("(")?;
                let mut steps = vec![w.name("an event type")?];
                while w.is(",") {
                    w.keyword(",")?;
                    steps.push(w.name("an event type")?);
                }
                w.keyword(")")?;
                Shape::Sequence { steps }
            }
            other => {
                return Err(format!(
                    "a pattern starts with times(N) or sequence(type, ...), not '{other}'"
                ));
            }
        };
        let mut same = Vec::new();
        if w.is("with") {
            w.keyword("with")?;
            w.keyword("same")?;
            same.push(w.name("a column")?.to_lowercase());
            while w.is(",") {
                w.keyword(",")?;
                same.push(w.name("a column")?.to_lowercase());
            }
        }
        w.keyword("within")?;
        let within_micros = w.duration()?;
        let absent = if w.is("and") {
            w.keyword("and")?;
            Some(Self::absence(&mut w, Some(within_micros))?)
        } else {
            None
        };
        if let Some(extra) = w.peek() {
            return Err(format!("unexpected '{extra}' at the end of the pattern"));
        }
        Ok(Pattern {
            shape,
            same,
            within_micros,
            absent,
        })
    }

    /// `not followed by T [within W]` (W is required without a default).
    fn absence(w: &mut Words, default: Option<i64>) -> Result<Absence, String> {
        w.keyword("not")?;
        w.keyword("followed")?;
        w.keyword("by")?;
        let event_type = w.name("an event type")?;
        let within_micros = match default {
            Some(default) if !w.is("within") => default,
            _ => {
                w.keyword("within")?;
                w.duration()?
            }
        };
        Ok(Absence {
            event_type,
            within_micros,
        })
    }

    /// The event type of the counted events, when the pattern names it.
    pub fn trigger_type(&self) -> Option<&str> {
        match &self.shape {
            Shape::Count { of, .. } => of.as_deref(),
            Shape::Sequence { steps } => steps.last().map(String::as_str),
        }
    }

    /// Every event type the pattern needs besides the counted events.
    pub fn other_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = match &self.shape {
            Shape::Count { .. } => vec![],
            Shape::Sequence { steps } => steps
                .split_last()
                .map_or(&[][..], |(_, before)| before)
                .iter()
                .map(String::as_str)
                .collect(),
        };
        types.extend(self.absent.as_ref().map(|a| a.event_type.as_str()));
        types.sort_unstable();
        types.dedup();
        types
    }

    /// How far back from the watermark an event can still take part in a match that is
    /// not yet decided: state older than this can be dropped.
    pub fn horizon_micros(&self) -> i64 {
        self.within_micros + self.absent.as_ref().map_or(0, |a| a.within_micros)
    }

    /// Evaluates the pattern over one partition's events, in order of (ts, order), and
    /// reports every counted event at which it matches: fired at a time, or pending
    /// until the watermark passes its deadline.
    pub fn evaluate(&self, events: &[PatternEvent], watermark: i64, out: &mut Vec<Found>) {
        debug_assert!(
            events
                .windows(2)
                .all(|w| (w[0].ts, w[0].order) <= (w[1].ts, w[1].order))
        );
        let absent_type = self.absent.as_ref().map(|a| a.event_type.as_str());
        let positive = |i: usize| -> Found {
            let e = &events[i];
            let Some(absence) = &self.absent else {
                return Found::Fired { index: i, at: e.ts };
            };
            let deadline = e.ts.saturating_add(absence.within_micros);
            let followed = events.iter().enumerate().any(|(j, other)| {
                j != i
                    && other.ts >= e.ts
                    && other.ts <= deadline
                    && absent_type == Some(other.event_type.as_ref())
            });
            if followed {
                Found::Cancelled { index: i }
            } else if watermark > deadline {
                Found::Fired {
                    index: i,
                    at: deadline,
                }
            } else {
                Found::Pending { index: i, deadline }
            }
        };
        match &self.shape {
            Shape::Count { times, .. } => {
                let times = *times as usize;
                let mut counted: Vec<usize> = Vec::new();
                let mut first = 0;
                for (i, e) in events.iter().enumerate() {
                    if !e.counted {
                        continue;
                    }
                    counted.push(i);
                    while events[counted[first]].ts < e.ts.saturating_sub(self.within_micros) {
                        first += 1;
                    }
                    if counted.len() - first >= times {
                        out.push(positive(i));
                    }
                }
            }
            Shape::Sequence { steps } => {
                let n = steps.len();
                // best[k]: the latest start time of a chain of steps 0..=k so far.
                let mut best = vec![i64::MIN; n];
                for (i, e) in events.iter().enumerate() {
                    for k in (0..n).rev() {
                        if steps[k] != *e.event_type {
                            continue;
                        }
                        if k == n - 1 {
                            let start = if n == 1 { e.ts } else { best[n - 2] };
                            if e.counted
                                && start != i64::MIN
                                && start >= e.ts.saturating_sub(self.within_micros)
                            {
                                out.push(positive(i));
                            }
                        } else if k == 0 {
                            best[0] = e.ts;
                        } else {
                            best[k] = best[k].max(best[k - 1]);
                        }
                    }
                }
            }
        }
    }
}

/// One event of a partition, as a pattern sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternEvent {
    pub ts: i64,
    /// Breaks ties in time: the event id, or the input position.
    pub order: i64,
    pub event_type: std::sync::Arc<str>,
    /// Of the rule's event type, within its validity, and its condition holds.
    pub counted: bool,
}

/// What a pattern found at one counted event (`index` into the partition's events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Fired {
        index: usize,
        at: i64,
    },
    Pending {
        index: usize,
        deadline: i64,
    },
    /// The positive part matched but the absent event came.
    Cancelled {
        index: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    fn ev(ts_min: i64, order: i64, t: &str, counted: bool) -> PatternEvent {
        PatternEvent {
            ts: ts_min * MIN,
            order,
            event_type: t.into(),
            counted,
        }
    }

    fn run(p: &str, events: &[PatternEvent], watermark_min: i64) -> Vec<Found> {
        let mut out = Vec::new();
        Pattern::parse(p)
            .unwrap()
            .evaluate(events, watermark_min * MIN, &mut out);
        out
    }

    #[test]
    fn parses_and_prints() {
        let p = Pattern::parse(
            "TIMES(3) of view with same category within 30m and not followed by order",
        )
        .unwrap();
        assert_eq!(
            p.to_string(),
            "times(3) of view with same category within 30m and not followed by order within 30m"
        );
        assert_eq!(p.trigger_type(), Some("view"));
        assert_eq!(p.other_types(), ["order"]);
        let alone = Pattern::parse("not followed by order within 2h").unwrap();
        assert_eq!(alone.to_string(), "not followed by order within 2h");
        assert_eq!(alone.other_types(), ["order"]);
        assert!(Pattern::parse("not followed by order").is_err());
        let s = Pattern::parse("sequence(view, cart, order) within 1h").unwrap();
        assert_eq!(s.trigger_type(), Some("order"));
        assert_eq!(s.other_types(), ["cart", "view"]);
        for bad in [
            "times(0) within 1m",
            "times(2)",
            "times(2) within 5x",
            "sequence() within 1m",
            "times(2) within 1m and followed by x",
            "times(2) within 1m extra",
            "often within 1m",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn count_window_is_inclusive_at_exactly_the_duration() {
        let at_30 = [
            ev(0, 1, "view", true),
            ev(10, 2, "view", true),
            ev(30, 3, "view", true),
        ];
        assert_eq!(
            run("times(3) within 30m", &at_30, 100),
            [Found::Fired {
                index: 2,
                at: 30 * MIN
            }]
        );
        let past_30 = [
            ev(0, 1, "view", true),
            ev(10, 2, "view", true),
            ev(30, 3, "view", true),
        ];
        let mut shifted = past_30.to_vec();
        shifted[2].ts += 1;
        assert_eq!(run("times(3) within 30m", &shifted, 100), []);
        // Uncounted events (condition false) do not count.
        let mixed = [
            ev(0, 1, "view", true),
            ev(1, 2, "view", false),
            ev(2, 3, "view", true),
        ];
        assert_eq!(run("times(3) within 30m", &mixed, 100), []);
    }

    #[test]
    fn absence_cancels_waits_and_fires_at_the_deadline() {
        let p = "times(2) within 30m and not followed by order";
        let base = vec![ev(0, 1, "view", true), ev(5, 2, "view", true)];
        // No order: pending until the watermark passes 5m + 30m.
        assert_eq!(
            run(p, &base, 35),
            [Found::Pending {
                index: 1,
                deadline: 35 * MIN
            }]
        );
        assert_eq!(
            run(p, &base, 36),
            [Found::Fired {
                index: 1,
                at: 35 * MIN
            }]
        );
        // An order exactly at the deadline follows; one just after does not.
        let mut with_order = base.clone();
        with_order.push(ev(35, 3, "order", false));
        assert_eq!(run(p, &with_order, 100), [Found::Cancelled { index: 1 }]);
        let mut late = base.clone();
        late[1].ts = 5 * MIN;
        late.push(PatternEvent {
            ts: 35 * MIN + 1,
            order: 3,
            event_type: "order".into(),
            counted: false,
        });
        assert_eq!(
            run(p, &late, 100),
            [Found::Fired {
                index: 1,
                at: 35 * MIN
            }]
        );
        // Absence alone: after every counted event.
        let alone = "not followed by order within 30m";
        assert_eq!(
            run(alone, &base, 100),
            [
                Found::Fired {
                    index: 0,
                    at: 30 * MIN
                },
                Found::Fired {
                    index: 1,
                    at: 35 * MIN
                }
            ]
        );
        // An order before the trigger does not follow it.
        let before = vec![
            ev(0, 1, "order", false),
            ev(1, 2, "view", true),
            ev(2, 3, "view", true),
        ];
        assert_eq!(
            run(p, &before, 100),
            [Found::Fired {
                index: 2,
                at: 32 * MIN
            }]
        );
    }

    #[test]
    fn sequences_need_their_steps_in_order_within_the_window() {
        let p = "sequence(view, cart, order) within 1h";
        let ok = [
            ev(0, 1, "view", false),
            ev(10, 2, "cart", false),
            ev(60, 3, "order", true),
        ];
        assert_eq!(
            run(p, &ok, 100),
            [Found::Fired {
                index: 2,
                at: 60 * MIN
            }]
        );
        let wrong_order = [
            ev(0, 1, "cart", false),
            ev(10, 2, "view", false),
            ev(20, 3, "order", true),
        ];
        assert_eq!(run(p, &wrong_order, 100), []);
        let too_long = [
            ev(0, 1, "view", false),
            ev(10, 2, "cart", false),
            ev(61, 3, "order", true),
        ];
        assert_eq!(run(p, &too_long, 100), []);
        // A later view restarts the chain from a later start.
        let restart = [
            ev(0, 1, "view", false),
            ev(5, 2, "view", false),
            ev(10, 3, "cart", false),
            ev(64, 4, "order", true),
        ];
        assert_eq!(
            run(p, &restart, 100),
            [Found::Fired {
                index: 3,
                at: 64 * MIN
            }]
        );
        // A repeated step needs two events.
        let twice = "sequence(view, view) within 1h";
        assert_eq!(run(twice, &[ev(0, 1, "view", true)], 100), []);
        assert_eq!(
            run(
                twice,
                &[ev(0, 1, "view", true), ev(1, 2, "view", true)],
                100
            ),
            [Found::Fired { index: 1, at: MIN }]
        );
    }
}
