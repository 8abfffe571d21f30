//! `build-info --output=json`: what a Nym binary says about itself (the daemon protocol, see
//! docs/REFERENCE.md "Build information").

use serde::{Deserialize, Serialize};

/// Build information printed by `<bin> build-info --output=json` (snake_case, as the daemons
/// print it).
///
/// Only `binary_name` and `build_version` are required: older Nym binaries print fewer fields
/// (`cargo_triple` came late), newer ones may add fields. Unknown fields are kept, so what a
/// binary printed is written back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub binary_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_timestamp: Option<String>,
    pub build_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rustc_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rustc_channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cargo_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cargo_triple: Option<String>,
    /// Fields this version of nymvisor does not know.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl BuildInfo {
    /// Build information with only the required fields.
    pub fn new(binary_name: impl Into<String>, build_version: impl Into<String>) -> Self {
        BuildInfo {
            binary_name: binary_name.into(),
            build_timestamp: None,
            build_version: build_version.into(),
            commit_sha: None,
            commit_timestamp: None,
            commit_branch: None,
            rustc_version: None,
            rustc_channel: None,
            cargo_profile: None,
            cargo_triple: None,
            extra: serde_json::Map::new(),
        }
    }

    fn known_fields(&self) -> [(&'static str, Option<&str>); 10] {
        [
            ("binary_name", Some(self.binary_name.as_str())),
            ("build_timestamp", self.build_timestamp.as_deref()),
            ("build_version", Some(self.build_version.as_str())),
            ("commit_sha", self.commit_sha.as_deref()),
            ("commit_timestamp", self.commit_timestamp.as_deref()),
            ("commit_branch", self.commit_branch.as_deref()),
            ("rustc_version", self.rustc_version.as_deref()),
            ("rustc_channel", self.rustc_channel.as_deref()),
            ("cargo_profile", self.cargo_profile.as_deref()),
            ("cargo_triple", self.cargo_triple.as_deref()),
        ]
    }

    /// Whether this binary's build information agrees with `expected` (what an upgrade
    /// announced): `binary_name` and `build_version` must be equal, and every other field that
    /// both sides have must have the same value. A field only one side has is not compared: an
    /// older binary prints fewer fields, and release metadata (`hashes.json`) may carry fields
    /// no binary prints.
    pub fn matches(&self, expected: &BuildInfo) -> bool {
        self.first_difference(expected).is_none()
    }

    /// The first field that differs from `expected`, for messages (see [`BuildInfo::matches`]).
    pub fn first_difference(&self, expected: &BuildInfo) -> Option<String> {
        for ((name, want), (_, have)) in expected.known_fields().iter().zip(self.known_fields()) {
            if let (Some(want), Some(have)) = (want, have)
                && want != &have
            {
                return Some(format!("{name} is {have:?}, expected {want:?}"));
            }
        }
        expected
            .extra
            .iter()
            .find(|(k, v)| self.extra.get(*k).is_some_and(|have| have != *v))
            .map(|(k, v)| {
                format!(
                    "{k} is {}, expected {v}",
                    self.extra.get(k).unwrap_or(&serde_json::Value::Null)
                )
            })
    }

    /// `Label: value` lines, for `-o text`.
    pub fn to_text(&self) -> String {
        let labels = [
            "Binary Name",
            "Build Timestamp",
            "Build Version",
            "Commit SHA",
            "Commit Date",
            "Commit Branch",
            "rustc Version",
            "rustc Channel",
            "cargo Profile",
            "cargo Triple",
        ];
        let mut rows: Vec<(String, String)> = labels
            .iter()
            .zip(self.known_fields())
            .filter_map(|(label, (_, v))| Some(((*label).to_owned(), v?.to_owned())))
            .collect();
        rows.extend(self.extra.iter().map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            )
        }));
        let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
        rows.iter()
            .map(|(label, value)| format!("{:<width$} {value}\n", format!("{label}:")))
            .collect()
    }
}
