//! The fleet records a member still has to write (a release, a failure, …), in order, kept in
//! `fleet-pending.json` until etcd took them: one that cannot reach etcd survives a restart of
//! nymvisor. Each is stamped with its group and member; a record of another group or member (the
//! configuration changed) is dropped with a warning, never written into the wrong group.

use std::collections::VecDeque;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::helper::fleet::FleetOp;

/// One record on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stamped {
    group: String,
    member: String,
    #[serde(flatten)]
    op: FleetOp,
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct Records {
    queue: VecDeque<FleetOp>,
    path: PathBuf,
    group: String,
    member: String,
}

impl Records {
    /// The records left in `path` by the last run for `group` and `member`.
    pub(super) fn load(path: PathBuf, group: &str, member: &str) -> Records {
        let stamped: Vec<Stamped> = match crate::fsutil::read_json_opt(&path) {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => {
                // this member's slot is settled from what runs instead (the start's settle)
                tracing::warn!(
                    "{e}; the fleet records it held are not written (this member's slot is settled from what runs instead)"
                );
                Vec::new()
            }
        };
        let mut queue = VecDeque::new();
        for s in stamped {
            if s.group == group && s.member == member {
                queue.push_back(s.op);
            } else {
                tracing::warn!(
                    "fleet: a record of member {} in group {} is dropped: this nymvisor is member {member} of group {group} now ({})",
                    s.member,
                    s.group,
                    describe(&s.op)
                );
            }
        }
        Records {
            queue,
            path,
            group: group.to_owned(),
            member: member.to_owned(),
        }
    }

    pub(super) fn front(&self) -> Option<&FleetOp> {
        self.queue.front()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Adds `op` last; saved at once unless it is the start's settle (every start settles
    /// anew).
    pub(super) fn push(&mut self, op: FleetOp) {
        self.queue.push_back(op);
        self.save();
    }

    /// The first record was written.
    pub(super) fn pop(&mut self) {
        self.queue.pop_front();
        self.save();
    }

    /// The records, in words (for `status`).
    pub(super) fn describe_all(&self) -> Vec<String> {
        self.queue.iter().map(describe).collect()
    }

    fn save(&self) {
        let lasting: Vec<Stamped> = self
            .queue
            .iter()
            .filter(|op| !matches!(op, FleetOp::Settle { .. }))
            .map(|op| Stamped {
                group: self.group.clone(),
                member: self.member.clone(),
                op: op.clone(),
            })
            .collect();
        let saved = if lasting.is_empty() {
            match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(crate::Error::io("failed to remove", &self.path, e))
                }
                _ => Ok(()),
            }
        } else {
            crate::fsutil::write_json(&self.path, &lasting)
        };
        if let Err(e) = saved {
            tracing::warn!("the fleet records to write are kept in memory only: {e}");
        }
    }
}

/// A record, in words (for `status` and the log).
pub(super) fn describe(op: &FleetOp) -> String {
    match op {
        FleetOp::Confirming { version, .. } => format!("the slot's state (confirming {version})"),
        FleetOp::Release { version } => format!("the release of the slot ({version} confirmed)"),
        FleetOp::Fail {
            version, reason, ..
        } => format!("the failure of {version} ({reason})"),
        FleetOp::Abandon { version } => format!("the return of the slot for {version}"),
        FleetOp::Settle { .. } => "the check of this member's slot at start".to_owned(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_survive_a_restart_in_their_group_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet-pending.json");
        let mut r = Records::load(path.clone(), "g", "a");
        r.push(FleetOp::Release {
            version: "1.2.0".into(),
        });
        r.push(FleetOp::Settle {
            current: "1.2.0".into(),
            confirming: None,
            history: Some(vec![]),
        });
        let again = Records::load(path.clone(), "g", "a");
        assert_eq!(
            again.describe_all(),
            ["the release of the slot (1.2.0 confirmed)"],
            "the settle is not kept"
        );
        // another group (the configuration changed): dropped, not written there
        assert!(Records::load(path.clone(), "other", "a").is_empty());
        assert!(Records::load(path.clone(), "g", "b").is_empty());
        r.pop();
        r.pop();
        assert!(!path.exists(), "the file goes with its last record");
    }
}
