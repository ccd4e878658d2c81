//! Client settings of one session: the PostgreSQL parameters drivers and BI tools set and
//! read (`SET`, `SHOW`, `RESET`, `current_setting`).
//!
//! Invariants: names are matched case-insensitively and shown with PostgreSQL's spelling;
//! a value is validated when it is set, so what `SHOW` answers is always a value the
//! session acts on. Parameters that only change PostgreSQL internals (work_mem, ...) are
//! accepted and shown but change nothing here; unknown names are rejected like
//! PostgreSQL does (42704), except `a.b` custom names, which PostgreSQL also accepts.

use std::collections::BTreeMap;
use std::time::Duration;

use super::SessionError;

/// `(name, default)` of every parameter a session knows. The defaults are what
/// PostgreSQL 15 reports, except where martdb behaves differently (TimeZone is UTC).
const PARAMETERS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("DateStyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("default_transaction_read_only", "off"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("idle_session_timeout", "0"),
    ("integer_datetimes", "on"),
    ("IntervalStyle", "postgres"),
    ("jit", "off"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("lc_messages", "C"),
    ("lc_monetary", "C"),
    ("lc_numeric", "C"),
    ("lc_time", "C"),
    ("lock_timeout", "0"),
    ("maintenance_work_mem", "64MB"),
    ("martdb.max_result_size", "0"),
    ("martdb.ml_device", "cpu"),
    ("martdb.query_memory_limit", "0"),
    ("max_identifier_length", "63"),
    ("max_parallel_workers_per_gather", "2"),
    ("row_security", "on"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version", super::SERVER_VERSION),
    ("server_version_num", "150000"),
    ("session_authorization", ""),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("synchronous_commit", "on"),
    ("TimeZone", "UTC"),
    ("transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
    ("work_mem", "4MB"),
];

/// Parameters a client may read but not change.
const READ_ONLY: &[&str] = &[
    "integer_datetimes",
    "lc_collate",
    "lc_ctype",
    "max_identifier_length",
    "server_encoding",
    "server_version",
    "server_version_num",
];

/// Sizes the server may cap: a session can lower them but not raise them past the
/// server's value (nor turn them off).
const CAPPED: &[&str] = &["martdb.max_result_size", "martdb.query_memory_limit"];

/// The settings of one session.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lowercased name -> (display name, value). Custom `a.b` names included.
    values: BTreeMap<String, (String, String)>,
    /// Defaults the server set in place of PostgreSQL's (what `RESET` goes back to).
    defaults: BTreeMap<String, String>,
    /// Lowercased name -> the largest value in bytes a session may set (see [`CAPPED`]).
    caps: BTreeMap<String, usize>,
}

impl Default for Settings {
    fn default() -> Self {
        let values = PARAMETERS
            .iter()
            .map(|(name, value)| {
                (
                    name.to_ascii_lowercase(),
                    (name.to_string(), value.to_string()),
                )
            })
            .collect();
        Settings {
            values,
            defaults: BTreeMap::new(),
            caps: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// The current value of `name`, or 42704 for an unknown parameter.
    pub fn get(&self, name: &str) -> Result<&str, SessionError> {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| SessionError::UnknownSetting {
                name: name.to_string(),
            })
    }

    /// Every parameter as `(name, value)`, sorted by name.
    pub fn all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .values()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The display spelling of a known parameter (`datestyle` -> `DateStyle`).
    pub fn display_name(&self, name: &str) -> String {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(|(display, _)| display.clone())
            .unwrap_or_else(|| name.to_ascii_lowercase())
    }

    /// Validates and stores `value` for `name`; returns the normalised value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<String, SessionError> {
        let key = name.to_ascii_lowercase();
        if READ_ONLY.contains(&key.as_str()) {
            return Err(SessionError::ReadOnlySetting {
                name: name.to_string(),
            });
        }
        let display = match self.values.get(&key) {
            Some((display, _)) => display.clone(),
            None if key.contains('.') => key.clone(),
            None => {
                return Err(SessionError::UnknownSetting {
                    name: name.to_string(),
                });
            }
        };
        let value = normalise(&key, value)?;
        if let Some(&cap) = self.caps.get(&key) {
            let bytes = parse_bytes(&value).unwrap_or(0);
            if bytes == 0 || bytes > cap {
                return Err(SessionError::AboveServerLimit {
                    name: display,
                    value,
                    limit: show_bytes(cap),
                });
            }
        }
        self.values.insert(key, (display, value.clone()));
        Ok(value)
    }

    /// A server-imposed default: `name` starts at `value` and `RESET` returns to it. For
    /// the sizes of [`CAPPED`], `value` is also the most a session may set.
    pub(crate) fn impose(&mut self, name: &str, value: &str) -> Result<(), SessionError> {
        let key = name.to_ascii_lowercase();
        self.caps.remove(&key);
        let value = self.set(name, value)?;
        if CAPPED.contains(&key.as_str()) {
            let bytes = parse_bytes(&value).unwrap_or(0);
            if bytes > 0 {
                self.caps.insert(key.clone(), bytes);
            }
        }
        self.defaults.insert(key, value);
        Ok(())
    }

    /// Every parameter back to its default (`RESET ALL`, `DISCARD ALL`); custom names
    /// are removed.
    pub(crate) fn reset_all(&mut self) {
        let fresh = Settings::default();
        self.values = fresh.values;
        for (key, value) in &self.defaults {
            if let Some((_, current)) = self.values.get_mut(key) {
                current.clone_from(value);
            }
        }
    }

    /// Stores a value without the checks of [`Settings::set`] (server-imposed values).
    pub(crate) fn force(&mut self, name: &str, value: &str) {
        let display = self.display_name(name);
        self.values
            .insert(name.to_ascii_lowercase(), (display, value.to_string()));
    }

    /// Restores the default of `name` (custom names are removed).
    pub fn reset(&mut self, name: &str) -> Result<(), SessionError> {
        let key = name.to_ascii_lowercase();
        match PARAMETERS
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(&key))
        {
            Some((known, value)) => {
                let value = self.defaults.get(&key).map_or(*value, String::as_str);
                self.values
                    .insert(key, (known.to_string(), value.to_string()));
                Ok(())
            }
            None if self.values.remove(&key).is_some() || key.contains('.') => Ok(()),
            None => Err(SessionError::UnknownSetting {
                name: name.to_string(),
            }),
        }
    }

    /// `statement_timeout` as a duration; `None` when off.
    pub fn statement_timeout(&self) -> Option<Duration> {
        let ms = parse_milliseconds(self.get("statement_timeout").ok()?).ok()?;
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// The idle timeout that applies now: `idle_in_transaction_session_timeout` inside a
    /// transaction block, `idle_session_timeout` outside; `None` when off.
    pub fn idle_timeout(&self, in_transaction: bool) -> Option<Duration> {
        let name = if in_transaction {
            "idle_in_transaction_session_timeout"
        } else {
            "idle_session_timeout"
        };
        let ms = parse_milliseconds(self.get(name).ok()?).ok()?;
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// A size setting in bytes; `None` when 0 (off).
    pub fn bytes(&self, name: &str) -> Option<usize> {
        parse_bytes(self.get(name).ok()?)
            .ok()
            .filter(|&bytes| bytes > 0)
    }

    /// The schemas of `search_path` in order, without `"$user"` and `pg_catalog`.
    pub fn search_path(&self) -> Vec<String> {
        self.get("search_path")
            .unwrap_or("public")
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty() && s != "$user" && s != "pg_catalog")
            .collect()
    }
}

/// Checks a value and puts it in the form `SHOW` answers.
fn normalise(key: &str, value: &str) -> Result<String, SessionError> {
    let invalid = |expected: &str| SessionError::InvalidSetting {
        name: key.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    };
    match key {
        "statement_timeout"
        | "lock_timeout"
        | "idle_in_transaction_session_timeout"
        | "idle_session_timeout" => {
            let ms = parse_milliseconds(value)
                .map_err(|_| invalid("a duration such as 5000, '30s' or '2min'"))?;
            Ok(show_milliseconds(ms))
        }
        "martdb.max_result_size" | "martdb.query_memory_limit" => parse_bytes(value)
            .map(show_bytes)
            .map_err(|_| invalid("a size such as '64MB', '1GB' or 0 (no limit)")),
        "client_encoding" => {
            let upper = value.to_ascii_uppercase().replace(['-', '_'], "");
            if matches!(upper.as_str(), "UTF8" | "UNICODE") {
                Ok("UTF8".to_string())
            } else {
                Err(invalid("UTF8 (martdb sends and receives UTF-8 only)"))
            }
        }
        "datestyle" => {
            // Output is always ISO; the order part only matters for parsing ambiguous
            // input, which martdb reads as ISO too.
            let first = value.split(',').next().unwrap_or("").trim();
            if first.eq_ignore_ascii_case("iso") {
                Ok("ISO, MDY".to_string())
            } else {
                Err(invalid("ISO (martdb writes dates in ISO 8601 only)"))
            }
        }
        "intervalstyle" => {
            if value.eq_ignore_ascii_case("postgres") {
                Ok("postgres".to_string())
            } else {
                Err(invalid("postgres"))
            }
        }
        "extra_float_digits" => match value.trim().parse::<i32>() {
            Ok(n) if (-15..=3).contains(&n) => Ok(n.to_string()),
            _ => Err(invalid("an integer from -15 to 3")),
        },
        "timezone" => {
            let tz = if value.eq_ignore_ascii_case("utc") || value.eq_ignore_ascii_case("z") {
                "UTC".to_string()
            } else {
                value.to_string()
            };
            tz.parse::<datafusion::arrow::array::timezone::Tz>()
                .map_err(|_| invalid("a time zone name such as 'UTC' or 'Europe/Paris', or an offset such as '+08:00'"))?;
            Ok(tz)
        }
        "martdb.ml_device" => {
            // Checked now, so a session never holds a device it cannot use.
            let device = crate::ml::runtime::MlDevice::parse(value)
                .map_err(|_| invalid("'cpu', 'cuda' or 'cuda:N'"))?;
            device
                .open()
                .map_err(|e| invalid(&format!("an available device: {e}")))?;
            Ok(device.to_string())
        }
        "transaction_read_only" | "default_transaction_read_only" | "jit" | "row_security" => {
            match value.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" | "1" => Ok("on".to_string()),
                "off" | "false" | "no" | "0" => Ok("off".to_string()),
                _ => Err(invalid("on or off")),
            }
        }
        _ => Ok(value.to_string()),
    }
}

/// PostgreSQL time units: a bare number is milliseconds.
fn parse_milliseconds(value: &str) -> Result<u64, ()> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| ())?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(()),
    };
    number.checked_mul(factor).ok_or(())
}

/// A size such as `512M`, `64MB`, `4G` or a number of bytes.
///
/// ```
/// assert_eq!(martdb::session::parse_bytes("64MB"), Ok(64 << 20));
/// assert_eq!(martdb::session::parse_bytes("1500"), Ok(1500));
/// assert!(martdb::session::parse_bytes("lots").is_err());
/// ```
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: usize = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size like 512M or 4G"))?;
    let factor: usize = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        other => return Err(format!("unknown size unit '{other}' (use K, M or G)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Bytes as PostgreSQL shows memory settings (`64MB`, `1GB`; `0` for off).
fn show_bytes(bytes: usize) -> String {
    match bytes {
        0 => "0".to_string(),
        b if b % (1 << 30) == 0 => format!("{}GB", b >> 30),
        b if b % (1 << 20) == 0 => format!("{}MB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}kB", b >> 10),
        b => format!("{b}B"),
    }
}

fn show_milliseconds(ms: u64) -> String {
    match ms {
        0 => "0".to_string(),
        ms if ms % 60_000 == 0 => format!("{}min", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_shown_as_postgres_spells_them() {
        let mut settings = Settings::default();
        settings.set("datestyle", "ISO").unwrap();
        assert_eq!(settings.get("DATESTYLE").unwrap(), "ISO, MDY");
        assert_eq!(settings.display_name("timezone"), "TimeZone");
    }

    #[test]
    fn server_limits_cap_sizes_and_set_defaults() {
        let mut settings = Settings::default();
        settings.impose("martdb.query_memory_limit", "1G").unwrap();
        settings.impose("statement_timeout", "30s").unwrap();
        assert_eq!(settings.get("martdb.query_memory_limit").unwrap(), "1GB");
        assert_eq!(settings.bytes("martdb.query_memory_limit"), Some(1 << 30));
        // Lower is allowed, higher or off is not.
        assert_eq!(
            settings.set("martdb.query_memory_limit", "64MB").unwrap(),
            "64MB"
        );
        for above in ["2GB", "0"] {
            let err = settings
                .set("martdb.query_memory_limit", above)
                .unwrap_err();
            assert_eq!(err.sqlstate(), "42501", "{err}");
            assert!(err.to_string().contains("1GB"), "{err}");
        }
        assert_eq!(settings.get("martdb.query_memory_limit").unwrap(), "64MB");
        // RESET returns to the server's values, not PostgreSQL's.
        settings.set("statement_timeout", "0").unwrap();
        settings.reset("statement_timeout").unwrap();
        assert_eq!(settings.get("statement_timeout").unwrap(), "30s");
        settings.reset_all();
        assert_eq!(settings.get("martdb.query_memory_limit").unwrap(), "1GB");
        assert_eq!(settings.get("statement_timeout").unwrap(), "30s");
        // Uncapped sizes can be switched off.
        settings.set("martdb.max_result_size", "10MB").unwrap();
        settings.set("martdb.max_result_size", "0").unwrap();
        assert_eq!(settings.bytes("martdb.max_result_size"), None);
        assert!(settings.set("martdb.max_result_size", "lots").is_err());
    }

    #[test]
    fn idle_timeouts_depend_on_the_transaction_state() {
        let mut settings = Settings::default();
        assert_eq!(settings.idle_timeout(false), None);
        settings.set("idle_session_timeout", "2s").unwrap();
        settings
            .set("idle_in_transaction_session_timeout", "500")
            .unwrap();
        assert_eq!(settings.idle_timeout(false), Some(Duration::from_secs(2)));
        assert_eq!(
            settings.idle_timeout(true),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn durations_take_postgres_units() {
        let mut settings = Settings::default();
        assert_eq!(settings.set("statement_timeout", "1500").unwrap(), "1500ms");
        assert_eq!(settings.set("statement_timeout", "30s").unwrap(), "30s");
        assert_eq!(
            settings.statement_timeout(),
            Some(Duration::from_millis(30_000))
        );
        settings.set("statement_timeout", "0").unwrap();
        assert_eq!(settings.statement_timeout(), None);
        assert!(settings.set("statement_timeout", "soon").is_err());
    }

    #[test]
    fn unknown_read_only_and_invalid_settings_are_rejected() {
        let mut settings = Settings::default();
        assert!(matches!(
            settings.set("no_such_thing", "1"),
            Err(SessionError::UnknownSetting { .. })
        ));
        assert!(matches!(
            settings.set("server_version", "16"),
            Err(SessionError::ReadOnlySetting { .. })
        ));
        assert!(settings.set("client_encoding", "LATIN1").is_err());
        assert!(settings.set("TimeZone", "Mars/Olympus").is_err());
        settings.set("TimeZone", "Europe/Paris").unwrap();
        settings.set("myapp.tenant", "42").unwrap();
        assert_eq!(settings.get("myapp.tenant").unwrap(), "42");
        settings.reset("TimeZone").unwrap();
        assert_eq!(settings.get("timezone").unwrap(), "UTC");
    }

    #[test]
    fn search_path_skips_user_and_pg_catalog() {
        let mut settings = Settings::default();
        assert_eq!(settings.search_path(), vec!["public"]);
        settings
            .set("search_path", "pg_catalog, marts, public")
            .unwrap();
        assert_eq!(settings.search_path(), vec!["marts", "public"]);
    }
}
