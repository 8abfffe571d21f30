//! `nymvisor mirror sync`: a private mirror that any static web server (or the `local` source on
//! a shared directory) serves to the operator's nodes.
//!
//! For each daemon the newest release is found and its binary downloaded and verified exactly as
//! `run` would (the same source, keys, verifiers and plugins, in the sandboxed network helper);
//! then the mirror directory gets, under `<out>/<daemon>/`:
//! - `<name>/<daemon>`: the verified binary, and `<name>/<daemon>.minisig`, signed with the
//!   operator's first key (trusted comment `file:<daemon>` and `version:<version>`);
//! - `upgrade-info.json`: the release as the HTTP and `local` sources read it, its binary URL
//!   relative to the document (or under `--base-url`), its checksum the SHA-256 of the verified
//!   bytes, plus the freshness keys `expires`, `sequence` and `signedAt`;
//! - `upgrade-info.json.minisig` (and `.minisig.1`, … for further keys): the feed's signatures;
//! - `mirror-state.json`: what the mirror holds and the last sequence it signed.
//!
//! Guarantees: a release whose upstream entry is unchanged and whose mirrored binary still has
//! the digest it was published with is never downloaded again (only the feed is signed anew,
//! with a later `expires` and a higher `sequence`); a release that fails verification changes
//! nothing in the mirror; two syncs of one directory never run at once (a lock file); the
//! sequence never goes down, even when `mirror-state.json` is lost (it is at least the Unix time
//! of the signing).

mod document;
mod state;
mod sync;

pub use document::{MirrorFeed, binary_url, next_sequence, to_prune};
pub use state::{MirrorState, MirroredRelease};
pub use sync::{SyncOptions, Synced, base_config, config_for, lock, sync_daemon};

/// File name of a mirror's own record, in `<out>/<daemon>/`.
pub const STATE_FILE: &str = "mirror-state.json";

/// The lock taken for the duration of a sync, in the output directory.
pub const LOCK_FILE: &str = ".nymvisor-mirror.lock";

/// Signs with one of the operator's secret keys (the minisign implementation lives in
/// `nymvisor-verifiers`, so this crate needs no signing code).
pub trait Signer: std::fmt::Debug + Send + Sync {
    /// The key id, as `minisign` prints it (16 upper-case hex digits).
    fn key_id(&self) -> String;

    /// A minisign signature (prehashed) of everything `data` yields, with this trusted comment,
    /// as the text of a `.minisig` file. `Err`: why it could not be made.
    fn sign(&self, data: &mut dyn std::io::Read, trusted_comment: &str) -> Result<String, String>;
}
