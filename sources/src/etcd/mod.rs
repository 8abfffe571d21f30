//! The fleet's records in etcd ([`nymvisor_core::fleet::FleetStore`]). Layout, under one prefix
//! per group (`/nymvisor/fleet/<group>/`), each value one JSON record
//! (`nymvisor_core::model::fleet`):
//!
//! | key                                   | record                                        |
//! |---------------------------------------|-----------------------------------------------|
//! | `slots/<member>`                      | a slot: version, since, state, reason         |
//! | `failed/<version>`                    | the version failed on a member                |
//! | `confirmed/<version>/canary/<member>` | a canary confirmed the version                |
//! | `confirmed/<version>/member/<member>` | another member confirmed it                   |
//! | `hold`                                | the fleet hold                                |
//! | `members/<member>`                    | what the member runs, whether it is a canary  |
//!
//! No key is bound to a lease: a slot outlives the nymvisor that took it.

mod client;

pub use client::EtcdClient;

use nymvisor_core::config::FleetConfig;
use nymvisor_core::env::Env;
use nymvisor_core::fleet::{FleetError, FleetStore, TakeGuard};
use nymvisor_core::model::fleet::{
    Confirmation, FailedVersion, FleetHold, FleetView, MemberSeen, Slot,
};
use serde_json::{Value, json};

use self::client::{b64, prefix_end};

/// See the module docs.
#[derive(Debug)]
pub struct EtcdFleet {
    client: EtcdClient,
    group: String,
    prefix: String,
}

/// The fleet store of `[fleet]`, if fleet coordination is configured.
pub fn from_config(f: &FleetConfig, env: &Env) -> Result<Option<EtcdFleet>, FleetError> {
    if !f.enabled() {
        return Ok(None);
    }
    Ok(Some(EtcdFleet {
        client: EtcdClient::from_config(f, env)?,
        group: f.group.clone(),
        prefix: format!("/nymvisor/fleet/{}/", f.group),
    }))
}

impl EtcdFleet {
    fn key(&self, rest: &str) -> Vec<u8> {
        format!("{}{rest}", self.prefix).into_bytes()
    }

    fn slot_key(&self, member: &str) -> Vec<u8> {
        self.key(&format!("slots/{member}"))
    }

    fn failed_key(&self, version: &str) -> Result<Vec<u8>, FleetError> {
        Ok(self.key(&format!("failed/{}", checked(version)?)))
    }

    fn confirmed_prefix(&self, version: &str, canary: bool) -> Result<Vec<u8>, FleetError> {
        let kind = if canary { "canary" } else { "member" };
        Ok(self.key(&format!("confirmed/{}/{kind}/", checked(version)?)))
    }
}

impl EtcdFleet {
    /// `ops` in one transaction, unconditionally.
    async fn write(&self, ops: Vec<Value>) -> Result<(), FleetError> {
        self.client.txn(vec![], ops).await.map(|_| ())
    }

    /// Deletes `key`; whether it existed.
    async fn delete_present(&self, key: &[u8]) -> Result<bool, FleetError> {
        self.client.txn(vec![present(key)], vec![delete(key)]).await
    }

    fn confirmation_key(&self, c: &Confirmation) -> Result<Vec<u8>, FleetError> {
        Ok([
            self.confirmed_prefix(&c.version, c.canary)?,
            c.member.as_bytes().to_vec(),
        ]
        .concat())
    }
}

/// A version as part of a key: no `/` (it would reach into another record's keys).
fn checked(version: &str) -> Result<&str, FleetError> {
    if version.is_empty() || version.contains('/') || version.chars().any(char::is_control) {
        return Err(FleetError::new(format!(
            "the version {version:?} cannot be part of an etcd key"
        )));
    }
    Ok(version)
}

fn put(key: &[u8], record: &impl serde::Serialize) -> Result<Value, FleetError> {
    let value = serde_json::to_vec(record)
        .map_err(|e| FleetError::new(format!("cannot encode a fleet record: {e}")))?;
    Ok(json!({ "request_put": { "key": b64(key), "value": b64(&value) } }))
}

fn delete(key: &[u8]) -> Value {
    json!({ "request_delete_range": { "key": b64(key) } })
}

/// `VERSION(key) > 0`: the key exists.
fn present(key: &[u8]) -> Value {
    json!({ "key": b64(key), "target": "VERSION", "result": "GREATER", "version": "0" })
}

/// `VERSION(key) == 0`: the key does not exist.
fn absent(key: &[u8]) -> Value {
    json!({ "key": b64(key), "target": "VERSION", "result": "EQUAL", "version": "0" })
}

#[async_trait::async_trait]
impl FleetStore for EtcdFleet {
    fn describe(&self) -> String {
        format!(
            "etcd at {}, keys under {}",
            self.client.endpoints(),
            self.prefix
        )
    }

    async fn view(&self) -> Result<FleetView, FleetError> {
        let (revision, kvs) = self.client.range_prefix(self.prefix.as_bytes()).await?;
        let mut view = FleetView {
            group: self.group.clone(),
            revision,
            ..FleetView::default()
        };
        for kv in kvs {
            let key = String::from_utf8_lossy(&kv.key);
            let rest = key.strip_prefix(&self.prefix).unwrap_or(&key).to_owned();
            let bad = |e: serde_json::Error| format!("{key}: {e}");
            let parsed = if rest.starts_with("slots/") {
                let parsed = serde_json::from_slice::<Slot>(&kv.value).map(|mut s| {
                    s.revision = kv.mod_revision;
                    view.slots.push(s)
                });
                if parsed.is_err() {
                    view.unreadable_slots.push(rest.clone());
                }
                parsed
            } else if rest.starts_with("failed/") {
                serde_json::from_slice(&kv.value).map(|f| view.failed.push(f))
            } else if rest.starts_with("confirmed/") {
                serde_json::from_slice(&kv.value).map(|c| view.confirmations.push(c))
            } else if rest == "hold" {
                serde_json::from_slice(&kv.value).map(|h| view.hold = Some(h))
            } else if rest.starts_with("members/") {
                serde_json::from_slice(&kv.value).map(|m| view.members.push(m))
            } else {
                Ok(())
            };
            if let Err(e) = parsed {
                view.unreadable.push(bad(e));
            }
        }
        Ok(view)
    }

    async fn take(&self, slot: &Slot, guard: &TakeGuard) -> Result<bool, FleetError> {
        let slots = self.key("slots/");
        let mut compare = vec![
            // no slot was taken, changed or released (by anyone) since the view
            json!({
                "key": b64(&slots), "range_end": b64(&prefix_end(&slots)),
                "target": "MOD", "result": "LESS", "mod_revision": (guard.revision + 1).to_string()
            }),
            absent(&self.failed_key(&slot.version)?),
        ];
        if guard.no_hold {
            compare.push(absent(&self.key("hold")));
        }
        if guard.canary_confirmed {
            let c = self.confirmed_prefix(&slot.version, true)?;
            // every key of an empty range has create revision 0: "some canary confirmed it"
            compare.push(json!({
                "key": b64(&c), "range_end": b64(&prefix_end(&c)),
                "target": "CREATE", "result": "GREATER", "create_revision": "0"
            }));
        }
        let success = vec![put(&self.slot_key(&slot.member), slot)?];
        self.client.txn(compare, success).await
    }

    async fn update_slot(&self, slot: &Slot) -> Result<bool, FleetError> {
        let key = self.slot_key(&slot.member);
        let ops = vec![put(&key, slot)?];
        self.client.txn(vec![present(&key)], ops).await
    }

    async fn fail(&self, slot: &Slot, failed: &FailedVersion) -> Result<(), FleetError> {
        let ops = vec![
            put(&self.slot_key(&slot.member), slot)?,
            put(&self.failed_key(&failed.version)?, failed)?,
        ];
        self.write(ops).await
    }

    async fn release(
        &self,
        member: &str,
        revision: i64,
        confirmation: Option<&Confirmation>,
    ) -> Result<bool, FleetError> {
        let key = self.slot_key(member);
        // the slot exactly as it was read: one that changed meanwhile is left alone
        let unchanged = json!({ "key": b64(&key), "target": "MOD", "result": "EQUAL", "mod_revision": revision.to_string() });
        let mut success = vec![delete(&key)];
        if let Some(c) = confirmation {
            success.push(put(&self.confirmation_key(c)?, c)?);
        }
        self.client.txn(vec![unchanged], success).await
    }

    async fn record_confirmation(&self, c: &Confirmation) -> Result<(), FleetError> {
        let ops = vec![put(&self.confirmation_key(c)?, c)?];
        self.write(ops).await
    }

    async fn forget_member(&self, member: &str) -> Result<bool, FleetError> {
        let key = self.key(&format!("members/{member}"));
        self.delete_present(&key).await
    }

    async fn set_hold(&self, hold: Option<&FleetHold>) -> Result<(), FleetError> {
        let key = self.key("hold");
        let op = match hold {
            Some(h) => put(&key, h)?,
            None => delete(&key),
        };
        self.write(vec![op]).await
    }

    async fn clear_failed(&self, version: &str) -> Result<bool, FleetError> {
        let key = self.failed_key(version)?;
        self.delete_present(&key).await
    }

    async fn forget(&self, confirmations: &[Confirmation]) -> Result<(), FleetError> {
        if confirmations.is_empty() {
            return Ok(());
        }
        let mut ops = Vec::new();
        for c in confirmations {
            ops.push(delete(&self.confirmation_key(c)?));
        }
        self.write(ops).await
    }

    fn save_session(&self) -> Option<serde_json::Value> {
        Some(self.client.session())
    }

    fn load_session(&self, session: serde_json::Value) {
        self.client.resume(&session);
    }

    async fn seen(&self, member: &MemberSeen) -> Result<(), FleetError> {
        let key = self.key(&format!("members/{}", member.member));
        let ops = vec![put(&key, member)?];
        self.write(ops).await
    }
}
