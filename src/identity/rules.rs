//! The rules that keep resolution from over-merging, and their form as rows.
//!
//! Rules are data: in SQL they are the rows `(rule, id_type, value)` of any query (a table
//! of rules, usually), parsed by [`Rules::from_rows`]; in Rust they are built with the
//! methods of [`Rules`]. `id_type` `'*'` (or NULL) means every type.
//!
//! | rule | id_type | value | effect |
//! | --- | --- | --- | --- |
//! | `block` | type or `*` | a value | links of an identifier with exactly this value are rejected (`blocked_value`) |
//! | `block_pattern` | type or `*` | a regular expression | the same for values it matches anywhere (anchor with `^…$`) |
//! | `max_per_person` | type | n | a person holds at most n identifiers of this type; a link that would break it is rejected (`max_per_person`) |
//! | `priority` | type | rank | links between higher-priority types (lower rank) are merged first, so under a limit the link through the lower-priority identifier is the one dropped; unranked types come last |
//! | `max_degree` | type or `*` | n | an identifier linked to more than n others is a hub: its links are rejected (`max_degree`) |
//! | `max_identifiers` | `*` | n | a person holds at most n identifiers; a link that would make it larger is rejected (`max_identifiers`) |
//! | `tie_break` | `*` | `recency` or `frequency` | among links of the same priority, the latest seen (recency, the default) or the most often seen (frequency, then latest) is merged first |

use std::collections::{BTreeMap, HashSet};

use regex::RegexSet;

use super::IdentityError;

/// Which of two equally ranked links is merged first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TieBreak {
    /// The link seen last.
    #[default]
    Recency,
    /// The link seen most often; then the one seen last.
    Frequency,
}

/// Resolution rules; the default has none (plain connected components).
///
/// ```
/// use martdb::identity::{Rules, TieBreak};
/// let rules = Rules::default()
///     .block("*", "null")
///     .block_pattern("phone", "^[0-]*$")
///     .unwrap()
///     .max_per_person("national_id", 1)
///     .priority(&["national_id", "phone", "email", "device"])
///     .max_degree("device", 50)
///     .tie_break(TieBreak::Frequency);
/// assert!(rules.orders_links());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Exact blocked values by type (`None`: every type).
    blocked: BTreeMap<Option<String>, HashSet<String>>,
    /// Blocked patterns by type, as written.
    patterns: BTreeMap<Option<String>, Vec<String>>,
    max_per_person: BTreeMap<String, u32>,
    ranks: BTreeMap<String, i64>,
    max_degree: BTreeMap<Option<String>, u32>,
    max_identifiers: Option<u32>,
    tie_break: TieBreak,
}

fn type_key(id_type: &str) -> Option<String> {
    (id_type != "*").then(|| id_type.to_string())
}

impl Rules {
    /// Blocks identifiers of `id_type` (`*`: any type) whose value is `value`.
    pub fn block(mut self, id_type: &str, value: &str) -> Self {
        self.blocked
            .entry(type_key(id_type))
            .or_default()
            .insert(value.to_string());
        self
    }

    /// Blocks identifiers of `id_type` (`*`: any type) whose value matches `pattern`.
    pub fn block_pattern(mut self, id_type: &str, pattern: &str) -> Result<Self, IdentityError> {
        regex::Regex::new(pattern).map_err(|e| IdentityError::Rule {
            message: format!("block_pattern '{pattern}' is not a regular expression: {e}"),
        })?;
        self.patterns
            .entry(type_key(id_type))
            .or_default()
            .push(pattern.to_string());
        Ok(self)
    }

    /// At most `limit` identifiers of `id_type` per person.
    pub fn max_per_person(mut self, id_type: &str, limit: u32) -> Self {
        self.max_per_person.insert(id_type.to_string(), limit);
        self
    }

    /// Ranks id types, highest priority first.
    pub fn priority(mut self, types: &[&str]) -> Self {
        for (rank, id_type) in types.iter().enumerate() {
            self.ranks.insert(id_type.to_string(), rank as i64);
        }
        self
    }

    /// Identifiers of `id_type` (`*`: any type without its own cap) linked to more than
    /// `limit` others are hubs.
    pub fn max_degree(mut self, id_type: &str, limit: u32) -> Self {
        self.max_degree.insert(type_key(id_type), limit);
        self
    }

    /// At most `limit` identifiers per person.
    pub fn max_identifiers(mut self, limit: u32) -> Self {
        self.max_identifiers = Some(limit);
        self
    }

    pub fn tie_break(mut self, tie_break: TieBreak) -> Self {
        self.tie_break = tie_break;
        self
    }

    /// Rules from `(rule, id_type, value)` rows; see the module doc. An error names the
    /// row (1-based) and what was wrong.
    pub fn from_rows<'a>(
        rows: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>, Option<&'a str>)>,
    ) -> Result<Self, IdentityError> {
        let mut rules = Rules::default();
        for (index, (rule, id_type, value)) in rows.into_iter().enumerate() {
            let row = index + 1;
            let bad = |message: String| IdentityError::Rule {
                message: format!("rule row {row}: {message}"),
            };
            let rule = rule.ok_or_else(|| bad("the rule is NULL".into()))?;
            let id_type = id_type.unwrap_or("*");
            let value = value.ok_or_else(|| bad(format!("{rule} needs a value")))?;
            let number = || {
                value.trim().parse::<u32>().map_err(|_| {
                    bad(format!(
                        "{rule} needs a whole number from 0 to {}, found '{value}'",
                        u32::MAX
                    ))
                })
            };
            let needs_type = || {
                if id_type == "*" {
                    Err(bad(format!("{rule} applies to one id type, not '*'")))
                } else {
                    Ok(())
                }
            };
            rules = match rule.to_ascii_lowercase().as_str() {
                "block" => rules.block(id_type, value),
                "block_pattern" => rules
                    .block_pattern(id_type, value)
                    .map_err(|e| bad(e.to_string()))?,
                "max_per_person" => {
                    needs_type()?;
                    rules.max_per_person(id_type, number()?)
                }
                "priority" => {
                    needs_type()?;
                    let rank = value.trim().parse::<i64>().map_err(|_| {
                        bad(format!("priority needs an integer rank, found '{value}'"))
                    })?;
                    rules.ranks.insert(id_type.to_string(), rank);
                    rules
                }
                "max_degree" => rules.max_degree(id_type, number()?),
                "max_identifiers" => rules.max_identifiers(number()?),
                "tie_break" => match value.to_ascii_lowercase().as_str() {
                    "recency" => rules.tie_break(TieBreak::Recency),
                    "frequency" => rules.tie_break(TieBreak::Frequency),
                    _ => {
                        return Err(bad(format!(
                            "tie_break is 'recency' or 'frequency', found '{value}'"
                        )));
                    }
                },
                _ => {
                    return Err(bad(format!(
                        "unknown rule '{rule}' (expected block, block_pattern, max_per_person, \
                         priority, max_degree, max_identifiers or tie_break)"
                    )));
                }
            };
        }
        Ok(rules)
    }

    /// Whether any rule is active.
    pub fn is_empty(&self) -> bool {
        self.blocked.is_empty()
            && self.patterns.is_empty()
            && self.max_per_person.is_empty()
            && self.max_degree.is_empty()
            && self.max_identifiers.is_none()
    }

    /// Whether the order links are merged in changes the result (a limit is set).
    pub fn orders_links(&self) -> bool {
        !self.max_per_person.is_empty() || self.max_identifiers.is_some()
    }

    /// Whether a rule needs the distinct links (degrees, or an order of links).
    pub(crate) fn needs_links(&self) -> bool {
        self.orders_links() || !self.max_degree.is_empty()
    }

    pub fn get_tie_break(&self) -> TieBreak {
        self.tie_break
    }

    /// The id types with a `max_per_person` limit.
    pub(crate) fn limited_types(&self) -> impl Iterator<Item = &str> {
        self.max_per_person.keys().map(String::as_str)
    }

    pub(crate) fn max_identifiers_limit(&self) -> Option<u32> {
        self.max_identifiers
    }

    /// The rules as they apply to one id type.
    #[cfg(test)]
    pub(crate) fn for_type(&self, id_type: &str) -> TypeRules {
        self.type_rules(id_type)
            .expect("the tests' block patterns compile together")
    }

    /// The rules as they apply to one id type. An error when its block patterns, each
    /// valid alone, are together too large to compile into one set.
    pub(crate) fn type_rules(&self, id_type: &str) -> Result<TypeRules, IdentityError> {
        let own = Some(id_type.to_string());
        let mut exact = HashSet::new();
        for key in [&None, &own] {
            if let Some(values) = self.blocked.get(key) {
                exact.extend(values.iter().cloned());
            }
        }
        let patterns: Vec<&String> = [&None, &own]
            .into_iter()
            .filter_map(|key| self.patterns.get(key))
            .flatten()
            .collect();
        let patterns = if patterns.is_empty() {
            None
        } else {
            Some(RegexSet::new(patterns).map_err(|e| IdentityError::Rule {
                message: format!("the block_pattern rules of id type '{id_type}' together: {e}"),
            })?)
        };
        Ok(TypeRules {
            exact,
            patterns,
            max_per_person: self.max_per_person.get(id_type).copied(),
            rank: self.ranks.get(id_type).copied().unwrap_or(i64::MAX),
            max_degree: self
                .max_degree
                .get(&own)
                .or_else(|| self.max_degree.get(&None))
                .copied(),
        })
    }
}

/// The rules of one id type, compiled.
#[derive(Debug)]
pub(crate) struct TypeRules {
    exact: HashSet<String>,
    patterns: Option<RegexSet>,
    pub max_per_person: Option<u32>,
    /// Merge order: lower first; unranked types are `i64::MAX`.
    pub rank: i64,
    pub max_degree: Option<u32>,
}

impl TypeRules {
    pub fn is_blocked(&self, value: &str) -> bool {
        self.exact.contains(value) || self.patterns.as_ref().is_some_and(|p| p.is_match(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_rules() {
        let rules = Rules::from_rows([
            (Some("block"), Some("*"), Some("null")),
            (Some("block_pattern"), Some("phone"), Some("^[0-]*$")),
            (Some("max_per_person"), Some("national_id"), Some("1")),
            (Some("priority"), Some("national_id"), Some("1")),
            (Some("priority"), Some("device"), Some("9")),
            (Some("max_degree"), None, Some("20")),
            (Some("tie_break"), Some("*"), Some("Frequency")),
        ])
        .unwrap();
        let phone = rules.for_type("phone");
        assert!(phone.is_blocked("null") && phone.is_blocked("000-0") && phone.is_blocked(""));
        assert!(!phone.is_blocked("13800000000"));
        let device = rules.for_type("device");
        assert!(device.is_blocked("null") && !device.is_blocked("000"));
        assert_eq!((device.rank, device.max_degree), (9, Some(20)));
        assert_eq!(rules.for_type("national_id").max_per_person, Some(1));
        assert_eq!(rules.for_type("email").rank, i64::MAX);
        assert_eq!(rules.get_tie_break(), TieBreak::Frequency);
        assert!(rules.orders_links());
    }

    #[test]
    fn bad_rows_name_the_row() {
        for (row, expected) in [
            (
                (Some("nope"), Some("*"), Some("1")),
                "rule row 2: unknown rule 'nope'",
            ),
            ((Some("max_degree"), Some("*"), Some("-3")), "whole number"),
            (
                (Some("block_pattern"), None, Some("(")),
                "not a regular expression",
            ),
            ((Some("max_per_person"), Some("*"), Some("1")), "not '*'"),
            (
                (Some("tie_break"), None, Some("oldest")),
                "'recency' or 'frequency'",
            ),
            ((Some("block"), Some("phone"), None), "needs a value"),
        ] {
            let err = Rules::from_rows([(Some("block"), Some("*"), Some("x")), row]).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
            assert!(err.to_string().contains("rule row 2"), "{err}");
        }
    }
}
