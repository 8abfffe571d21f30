//! How a raw string from the environment or an `init` flag becomes a configuration value: the
//! value kinds of the key table and their parsers, in one place.

use serde_json::Value;

/// How a raw string (from the environment or a flag) becomes a config value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A required string.
    Str,
    /// An optional string; empty means unset.
    OptStr,
    /// `true|false|t|f|1|0`, any case.
    Bool,
    /// A bool that may be left unset (empty).
    OptBool,
    /// A humantime duration.
    Duration,
    /// A non-negative integer.
    Count,
    /// A comma-separated list.
    List,
    /// One of a set of words, checked by the typed config on load.
    Choice(&'static str),
    /// A size in bytes: a number, optionally with `KiB`, `MiB` or `GiB`.
    Bytes,
}

/// Parses a size: a whole number of bytes, or one with a `KiB`, `MiB` or `GiB` suffix.
pub fn parse_bytes(raw: &str) -> Result<u64, String> {
    let t = raw.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], t[i..].trim()),
        None => (t, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected a number of bytes, such as 65536 or 64MiB".to_owned())?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        _ => return Err(format!("unknown unit {unit:?}; use KiB, MiB or GiB")),
    };
    n.checked_mul(factor).ok_or_else(|| "too large".to_owned())
}

/// Parses a boolean the way the reference does: `true|false|t|f|1|0`, any case.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Ok(true),
        "false" | "f" | "0" => Ok(false),
        _ => Err("expected one of true, false, t, f, 1, 0".to_owned()),
    }
}

/// Converts a raw string into the JSON value the typed config deserializes from.
///
/// Returns `Ok(None)` when the raw value means "leave the key as it is" (an empty value for a
/// key that cannot be unset).
pub fn parse_raw(kind: Kind, raw: &str) -> Result<Option<Value>, String> {
    let value = match kind {
        Kind::Str if raw.is_empty() => return Ok(None),
        Kind::Str => Value::String(raw.to_owned()),
        Kind::OptStr if raw.is_empty() => Value::Null,
        Kind::OptStr => Value::String(raw.to_owned()),
        Kind::Bool if raw.is_empty() => return Ok(None),
        Kind::Bool => Value::Bool(parse_bool(raw)?),
        Kind::OptBool if raw.is_empty() => Value::Null,
        Kind::OptBool => Value::Bool(parse_bool(raw)?),
        Kind::Duration if raw.is_empty() => return Ok(None),
        Kind::Duration => {
            let d = humantime::parse_duration(raw.trim())
                .map_err(|e| format!("not a duration such as `10s` or `1h 30m` ({e})"))?;
            Value::String(humantime::format_duration(d).to_string())
        }
        Kind::Count if raw.is_empty() => return Ok(None),
        Kind::Count => Value::from(
            raw.trim()
                .parse::<u32>()
                .map_err(|_| "expected a non-negative whole number".to_owned())?,
        ),
        Kind::List => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        Kind::Bytes if raw.is_empty() => return Ok(None),
        Kind::Bytes => Value::from(parse_bytes(raw)?),
        Kind::Choice(_) if raw.is_empty() => return Ok(None),
        Kind::Choice(words) => {
            check_choice(words, raw)?;
            Value::String(raw.to_owned())
        }
    };
    Ok(Some(value))
}

fn check_choice(words: &str, raw: &str) -> Result<(), String> {
    let ok = words.split('|').any(|w| match w.strip_suffix("<name>") {
        Some(prefix) => raw.len() > prefix.len() && raw.starts_with(prefix),
        None => raw.eq_ignore_ascii_case(w),
    });
    if ok {
        Ok(())
    } else {
        Err(format!("expected one of {}", words.replace('|', ", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_accept_reference_spellings() {
        for t in ["true", "TRUE", "t", "T", "1", " True "] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["false", "F", "0", "fAlSe"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        for bad in ["yes", "", "2", "on"] {
            assert!(parse_bool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn raw_values_parse_by_kind() {
        assert_eq!(parse_raw(Kind::OptStr, ""), Ok(Some(Value::Null)));
        assert_eq!(parse_raw(Kind::Bool, ""), Ok(None));
        assert_eq!(
            parse_raw(Kind::Duration, "90s"),
            Ok(Some(Value::String("1m 30s".into())))
        );
        assert!(parse_raw(Kind::Duration, "10 parsecs").is_err());
        assert!(parse_raw(Kind::Count, "-1").is_err());
        assert_eq!(
            parse_raw(Kind::List, "a, b,,c"),
            Ok(Some(serde_json::json!(["a", "b", "c"])))
        );
        assert!(parse_raw(Kind::Choice("copy|none"), "tar").is_err());
        assert!(parse_raw(Kind::Choice("http|plugin:<name>"), "plugin:x").is_ok());
        assert!(parse_raw(Kind::Choice("http|plugin:<name>"), "plugin:").is_err());
        assert_eq!(
            parse_raw(Kind::Bytes, "64MiB"),
            Ok(Some(Value::from(64u64 << 20)))
        );
        assert_eq!(
            parse_raw(Kind::Bytes, " 4096 "),
            Ok(Some(Value::from(4096u64)))
        );
        assert!(parse_raw(Kind::Bytes, "abc").is_err());
        assert!(parse_raw(Kind::Bytes, "12 parsecs").is_err());
        assert!(parse_raw(Kind::Bytes, "-1").is_err());
    }
}
