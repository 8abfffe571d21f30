//! `serde` helpers for keys that may be unset: `''` (0.1.41's way of writing "unset") and
//! `null` both mean `None`.

/// Optional strings: `''` (0.1.41's way of writing "unset") and `null` both mean `None`.
pub(super) mod opt_str {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: AsRef<std::ffi::OsStr>, S: Serializer>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&v.as_ref().to_string_lossy()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: From<String>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        Ok(v.filter(|s| !s.is_empty()).map(T::from))
    }
}

/// Optional booleans: `''` and `null` mean `None`.
pub(super) mod opt_bool {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_bool(*b),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Str(String),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Bool(b)) => Ok(Some(b)),
            Some(Raw::Str(s)) if s.is_empty() => Ok(None),
            Some(Raw::Str(s)) => Err(serde::de::Error::custom(format!(
                "expected true, false or '' (unset), found {s:?}"
            ))),
        }
    }
}
