//! The `[fleet]` section: coordinating upgrades with the other members of a group through
//! etcd (docs/OPERATOR_GUIDE.md "Coordinating a fleet with etcd"). Without endpoints, nothing is
//! coordinated.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::opt::opt_str;

/// See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// etcd v3 client URLs (`http(s)://host:2379`); empty: no coordination.
    pub etcd_endpoints: Vec<String>,
    /// The members that share the slots.
    pub group: String,
    /// At most this many members between their stop and their confirmation.
    pub slots: u32,
    /// This node's name in the group; unset: `<hostname>/<instance id>`.
    #[serde(with = "opt_str")]
    pub member: Option<String>,
    /// Upgrades before the members that are not canaries.
    pub canary: bool,
    /// The CA that signed the etcd servers' certificates (only it is trusted).
    #[serde(with = "opt_str")]
    pub etcd_ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for etcd's `--client-cert-auth`.
    #[serde(with = "opt_str")]
    pub etcd_cert_file: Option<PathBuf>,
    #[serde(with = "opt_str")]
    pub etcd_key_file: Option<PathBuf>,
    /// etcd user (role-based access).
    #[serde(with = "opt_str")]
    pub etcd_user: Option<String>,
    /// The environment variable holding that user's password (never the password itself).
    pub etcd_password_env: String,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            etcd_endpoints: Vec::new(),
            group: "default".to_owned(),
            slots: 1,
            member: None,
            canary: false,
            etcd_ca_file: None,
            etcd_cert_file: None,
            etcd_key_file: None,
            etcd_user: None,
            etcd_password_env: "NYMVISOR_FLEET_ETCD_PASSWORD".to_owned(),
        }
    }
}

impl FleetConfig {
    /// Whether upgrades are coordinated at all.
    pub fn enabled(&self) -> bool {
        !self.etcd_endpoints.is_empty()
    }

    /// This node's name in the group: `member`, or `<host>/<id>`.
    pub fn member_name(&self, host: &str, id: &str) -> String {
        match &self.member {
            Some(m) => m.clone(),
            None => format!("{host}/{id}"),
        }
    }

    /// What is wrong with the section, as (key, message).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if !self.enabled() {
            return None;
        }
        for e in &self.etcd_endpoints {
            let ok = (e.starts_with("http://") || e.starts_with("https://"))
                && e.split_once("://").is_some_and(|(_, rest)| {
                    !rest.is_empty() && !rest.contains(char::is_whitespace)
                });
            if !ok {
                return Some((
                    "fleet.etcd_endpoints",
                    format!(
                        "{e:?} is not an etcd client URL such as http://10.0.0.5:2379 or https://etcd-1.example:2379 (several are separated by commas)"
                    ),
                ));
            }
        }
        if self.group.is_empty()
            || !self
                .group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Some((
                "fleet.group",
                format!(
                    "{:?} is not a group name: use letters, digits, `.`, `_` and `-` (e.g. gateways-eu)",
                    self.group
                ),
            ));
        }
        if self.slots == 0 {
            return Some((
                "fleet.slots",
                "must be at least 1 (one member may upgrade at a time)".into(),
            ));
        }
        if let Some(m) = &self.member
            && (m.chars().any(char::is_control) || m.len() > 200)
        {
            return Some((
                "fleet.member",
                format!("{m:?} is not a member name (no control characters, at most 200 bytes)"),
            ));
        }
        if self.etcd_cert_file.is_some() != self.etcd_key_file.is_some() {
            return Some((
                "fleet.etcd_cert_file",
                "a client certificate needs its key (NYMVISOR_FLEET_ETCD_KEY_FILE), and the other way round".into(),
            ));
        }
        let tls = self.etcd_ca_file.is_some() || self.etcd_cert_file.is_some();
        if tls && self.etcd_endpoints.iter().any(|e| e.starts_with("http://")) {
            return Some((
                "fleet.etcd_endpoints",
                "TLS files are set but an endpoint is http://: use https:// endpoints".into(),
            ));
        }
        if self.etcd_user.is_some() && self.etcd_password_env.is_empty() {
            return Some((
                "fleet.etcd_password_env",
                "names no environment variable for the etcd user's password".into(),
            ));
        }
        None
    }
}

/// The kernel's (UTS namespace's) host name, as `hostname` prints it (`localhost` if it cannot
/// be read). Slots record it, so two hosts given the same member name are told apart.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
