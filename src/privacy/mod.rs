//! Personal data kept out of sight: masking text (`mask`, `mask_phone`, `mask_email`),
//! keyed pseudonymous ids (`hash_id`), and column masking policies per role.
//!
//! Invariants:
//! - a masking function never shows more than it promises: when the kept parts would
//!   cover the whole value, everything is masked; input it cannot parse (a phone number
//!   without enough digits, an e-mail address without `@`) is masked entirely rather
//!   than passed through;
//! - `hash_id` keys come from the configuration, never from SQL text: a key is named in
//!   SQL, and its bytes are not readable through SQL. The same id and key always give
//!   the same pseudonym (HMAC-SHA-256, hex), so pseudonymous tables still join;
//! - a masking policy is applied where the table is scanned, for every query of a
//!   session whose role it names (through views and subqueries too), and filters on a
//!   masked column are evaluated on the masked value, so they cannot probe the real one.

use std::collections::HashMap;
use std::sync::Arc;

/// Errors of privacy settings and functions.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// `hash_id` with a key name the configuration does not define.
    #[error(
        "hash key \"{name}\" is not configured (add it under [hash_keys] in the server configuration)"
    )]
    UnknownKey { name: String },
    /// A configured key that is too short or not in a known encoding.
    #[error("hash key \"{name}\": {reason}")]
    BadKey { name: String, reason: String },
    /// A masking policy that cannot be applied.
    #[error("masking policy for {table}.{column}: {reason}")]
    BadPolicy {
        table: String,
        column: String,
        reason: String,
    },
    /// `mask` with a negative count.
    #[error("{0}")]
    Argument(String),
}

impl PrivacyError {
    /// The SQLSTATE of this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            PrivacyError::UnknownKey { .. } => "42704",
            PrivacyError::BadKey { .. } | PrivacyError::BadPolicy { .. } => "F0000",
            PrivacyError::Argument(_) => "22023",
        }
    }
}

/// The character that replaces hidden ones.
pub const MASK: char = '*';

/// `text` with all but its first `keep_first` and last `keep_last` characters replaced
/// by `*`; all of it when those would cover the whole text.
///
/// ```
/// use martdb::privacy::mask;
/// assert_eq!(mask("4111111111111111", 0, 4), "************1111");
/// assert_eq!(mask("Zoë", 1, 1), "Z*ë");
/// assert_eq!(mask("Zoë", 2, 1), "***"); // would show it all
/// ```
pub fn mask(text: &str, keep_first: usize, keep_last: usize) -> String {
    let length = text.chars().count();
    if keep_first + keep_last >= length {
        return MASK.to_string().repeat(length);
    }
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_first || i >= length - keep_last {
                c
            } else {
                MASK
            }
        })
        .collect()
}

/// A phone number with its middle digits masked: the first 3 and the last 4 digits stay
/// when it has 10 digits or more, the last 2 when it has 7 to 9; separators and `+`
/// stay. With fewer than 7 digits it is not a phone number, and all of it is masked.
///
/// ```
/// use martdb::privacy::mask_phone;
/// assert_eq!(mask_phone("13812345678"), "138****5678");
/// assert_eq!(mask_phone("+1 (415) 555-0123"), "+1 (41*) ***-0123");
/// assert_eq!(mask_phone("555-0123"), "***-**23");
/// ```
pub fn mask_phone(phone: &str) -> String {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let (keep_first, keep_last) = match digits {
        0..7 => return mask(phone, 0, 0),
        7..10 => (0, 2),
        _ => (3, 4),
    };
    let mut seen = 0;
    phone
        .chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen <= keep_first || seen > digits - keep_last {
                c
            } else {
                MASK
            }
        })
        .collect()
}

/// An e-mail address with its local part masked but for its first character; the
/// domain stays. Without exactly one `@` and something before it, all of it is masked.
///
/// ```
/// use martdb::privacy::mask_email;
/// assert_eq!(mask_email("alice.smith@example.com"), "a**********@example.com");
/// assert_eq!(mask_email("not an address"), "**************");
/// ```
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.contains('@') => {
            format!("{}@{domain}", mask(local, 1, 0))
        }
        _ => mask(email, 0, 0),
    }
}

/// Secret keys for `hash_id`, by name, from the configuration.
#[derive(Clone, Default)]
pub struct HashKeys {
    keys: Arc<HashMap<String, ring::hmac::Key>>,
}

impl std::fmt::Debug for HashKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the keys are secret.
        let mut names: Vec<&String> = self.keys.keys().collect();
        names.sort();
        f.debug_struct("HashKeys").field("names", &names).finish()
    }
}

/// The shortest key accepted, in bytes (the HMAC-SHA-256 output size).
pub const MIN_KEY_BYTES: usize = 32;

impl HashKeys {
    /// Keys from `(name, text)` pairs; a text is `hex:<hex>` or `base64:<base64>` of at
    /// least [`MIN_KEY_BYTES`] bytes (e.g. `openssl rand -hex 32`).
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<HashKeys, PrivacyError> {
        use base64::Engine as _;
        let mut keys = HashMap::new();
        for (name, text) in entries {
            let bad = |reason: &str| PrivacyError::BadKey {
                name: name.to_string(),
                reason: reason.to_string(),
            };
            let bytes = if let Some(hex) = text.strip_prefix("hex:") {
                decode_hex(hex.trim()).ok_or_else(|| bad("not valid hex"))?
            } else if let Some(b64) = text.strip_prefix("base64:") {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| bad("not valid base64"))?
            } else {
                return Err(bad(
                    "write it as hex:<hex digits> or base64:<base64> (e.g. from `openssl rand -hex 32`)",
                ));
            };
            if bytes.len() < MIN_KEY_BYTES {
                return Err(bad(&format!(
                    "{} bytes; a key needs at least {MIN_KEY_BYTES}",
                    bytes.len()
                )));
            }
            keys.insert(
                name.to_string(),
                ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes),
            );
        }
        Ok(HashKeys {
            keys: Arc::new(keys),
        })
    }

    /// The pseudonym of `id` under the key `name`: HMAC-SHA-256 of the id's UTF-8 text,
    /// as 64 lowercase hex digits.
    ///
    /// ```
    /// let keys = martdb::privacy::HashKeys::parse([("crm", &*format!("hex:{}", "ab".repeat(32)))]).unwrap();
    /// let a = keys.hash_id("crm", "42").unwrap();
    /// assert_eq!(a, keys.hash_id("crm", "42").unwrap());
    /// assert_eq!(a.len(), 64);
    /// assert!(keys.hash_id("other", "42").is_err());
    /// ```
    pub fn hash_id(&self, name: &str, id: &str) -> Result<String, PrivacyError> {
        let key = self
            .keys
            .get(name)
            .ok_or_else(|| PrivacyError::UnknownKey {
                name: name.to_string(),
            })?;
        let tag = ring::hmac::sign(key, id.as_bytes());
        Ok(tag
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>())
    }

    /// Whether a key of this name is configured.
    pub fn contains(&self, name: &str) -> bool {
        self.keys.contains_key(name)
    }
}

/// What a masking policy shows instead of a column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Masking {
    /// [`mask`] with these counts.
    Mask { keep_first: usize, keep_last: usize },
    /// [`mask_phone`].
    Phone,
    /// [`mask_email`].
    Email,
    /// [`HashKeys::hash_id`] under this key.
    HashId { key: String },
    /// NULL: the column is withheld (the only masking for columns that are not text).
    Null,
}

impl Masking {
    /// Parses `mask_phone`, `mask_email`, `mask(1, 2)`, `hash_id(crm)` or `null`.
    ///
    /// ```
    /// use martdb::privacy::Masking;
    /// assert_eq!(Masking::parse("mask(0, 4)"), Ok(Masking::Mask { keep_first: 0, keep_last: 4 }));
    /// assert_eq!(Masking::parse("hash_id(crm)"), Ok(Masking::HashId { key: "crm".into() }));
    /// assert!(Masking::parse("rot13").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Masking, String> {
        let text = text.trim();
        let (name, args) = match text.split_once('(') {
            Some((name, rest)) => {
                let Some(args) = rest.trim_end().strip_suffix(')') else {
                    return Err(format!("'{text}': missing ')'"));
                };
                (name.trim(), Some(args))
            }
            None => (text, None),
        };
        let args: Vec<&str> = args
            .map(|a| a.split(',').map(str::trim).collect())
            .unwrap_or_default();
        match (name.to_ascii_lowercase().as_str(), args.as_slice()) {
            ("mask_phone", []) => Ok(Masking::Phone),
            ("mask_email", []) => Ok(Masking::Email),
            ("null", []) => Ok(Masking::Null),
            ("mask", [first, last]) => {
                let count = |n: &str| {
                    n.parse::<usize>()
                        .map_err(|_| format!("'{text}': counts are whole numbers"))
                };
                Ok(Masking::Mask {
                    keep_first: count(first)?,
                    keep_last: count(last)?,
                })
            }
            ("hash_id", [key]) if !key.is_empty() => Ok(Masking::HashId {
                key: key.trim_matches(['\'', '"']).to_string(),
            }),
            _ => Err(format!(
                "unknown masking '{text}': use mask_phone, mask_email, mask(keep_first, keep_last), hash_id(key_name) or null"
            )),
        }
    }

    /// The masked form of one (non-NULL) value.
    pub fn apply(&self, keys: &HashKeys, value: &str) -> Result<String, PrivacyError> {
        Ok(match self {
            Masking::Mask {
                keep_first,
                keep_last,
            } => mask(value, *keep_first, *keep_last),
            Masking::Phone => mask_phone(value),
            Masking::Email => mask_email(value),
            Masking::HashId { key } => keys.hash_id(key, value)?,
            Masking::Null => {
                return Err(PrivacyError::Argument(
                    "NULL masking replaces a value by NULL, not by a text".into(),
                ));
            }
        })
    }
}

/// One column masking rule (`[[masking]]` in the server configuration): sessions of the
/// listed roles see `column` of `schema.table` through `masking`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskingRule {
    pub schema: String,
    pub table: String,
    pub column: String,
    pub masking: Masking,
    /// Role names (`read_only`, `admin`).
    pub roles: Vec<String>,
}

/// The privacy settings an engine opens with.
#[derive(Debug, Clone, Default)]
pub struct PrivacyOptions {
    pub hash_keys: HashKeys,
    pub masking: Vec<MaskingRule>,
}

impl PrivacyOptions {
    /// Checks that every rule's key exists.
    pub fn validate(&self) -> Result<(), PrivacyError> {
        for rule in &self.masking {
            if let Masking::HashId { key } = &rule.masking
                && !self.hash_keys.contains(key)
            {
                return Err(PrivacyError::BadPolicy {
                    table: format!("{}.{}", rule.schema, rule.table),
                    column: rule.column.clone(),
                    reason: format!("hash key \"{key}\" is not configured under [hash_keys]"),
                });
            }
        }
        Ok(())
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keeps_what_it_promises_and_no_more() {
        assert_eq!(mask("abcdef", 2, 1), "ab***f");
        assert_eq!(mask("abcdef", 0, 0), "******");
        assert_eq!(mask("abc", 2, 1), "***");
        assert_eq!(mask("", 1, 1), "");
        assert_eq!(mask("日本語テキスト", 1, 1), "日*****ト");
    }

    #[test]
    fn phones() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("+86 138-1234-5678"), "+86 1**-****-5678");
        assert_eq!(mask_phone("555-0123"), "***-**23");
        assert_eq!(mask_phone("12345"), "*****");
        assert_eq!(mask_phone("call me"), "*******");
    }

    #[test]
    fn emails() {
        assert_eq!(mask_email("bo@example.com"), "b*@example.com");
        assert_eq!(mask_email("b@example.com"), "*@example.com");
        assert_eq!(mask_email("@example.com"), "************");
        assert_eq!(mask_email("a@b@c"), "*****");
    }

    #[test]
    fn hash_ids_are_keyed_and_stable() {
        let hex_key = format!("hex:{}", "0f".repeat(32));
        let keys = HashKeys::parse([("crm", hex_key.as_str())]).unwrap();
        // RFC 4231-style check against an independent HMAC: key 0x0f * 32, message "42".
        let a = keys.hash_id("crm", "42").unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, keys.hash_id("crm", "43").unwrap());
        let other = HashKeys::parse([("crm", &*format!("hex:{}", "0e".repeat(32)))]).unwrap();
        assert_ne!(a, other.hash_id("crm", "42").unwrap());
        let err = keys.hash_id("ads", "42").unwrap_err();
        assert_eq!(err.sqlstate(), "42704");
        for bad in ["hex:abcd", "hex:zz", "plain", "base64:!!"] {
            assert!(HashKeys::parse([("k", bad)]).is_err(), "{bad}");
        }
        assert!(!format!("{keys:?}").contains("0f0f"));
    }
}
