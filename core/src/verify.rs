//! Verification of candidate binaries: the [`Verifier`] trait (checksum and signature
//! implementations live in `nymvisor-verifiers`), composed in order; the first refusal stops the
//! upgrade.
//!
//! Digests are computed while the bytes stream in (each verifier says which it needs), so a
//! download is read exactly once and never held in memory.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;

use crate::model::{PlatformDetails, UpgradeInfo};
pub use crate::refusal::Refusal;
use crate::source::{SourcedUpgrade, UpgradeSource};

/// A hash being computed over a stream.
pub trait Digest: Send {
    fn update(&mut self, data: &[u8]);
    /// Lower-case hex of the final digest.
    fn finish_hex(self: Box<Self>) -> String;
}

/// Everything a verifier may look at.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub daemon: &'a str,
    pub info: &'a UpgradeInfo,
    /// The platform entry the binary came from (`None` for a binary added locally).
    pub platform: Option<&'a PlatformDetails>,
    /// The binary, complete, not yet executable or in place.
    pub path: &'a Path,
    /// Digests computed while streaming, by algorithm name (`sha256`, `sha3-512`, …).
    pub digests: &'a BTreeMap<String, String>,
    /// Whether the binary was downloaded (as opposed to placed by the operator).
    pub downloaded: bool,
}

/// One check of a candidate binary.
#[async_trait::async_trait]
pub trait Verifier: Debug + Send + Sync {
    /// Short name for logs (`checksum`, `minisign`, …).
    fn name(&self) -> &str;

    /// Streaming digests this verifier needs for `candidate` (algorithm name and a fresh hasher).
    fn digests(
        &self,
        _info: &UpgradeInfo,
        _platform: Option<&PlatformDetails>,
    ) -> Vec<(String, Box<dyn Digest>)> {
        Vec::new()
    }

    /// Checks what the upgrade says about a download before any byte of it is fetched (e.g. that
    /// its checksum can be checked at all). Accepts by default.
    fn verify_metadata(
        &self,
        _info: &UpgradeInfo,
        _platform: &PlatformDetails,
    ) -> Result<(), Refusal> {
        Ok(())
    }

    /// Checks a feed document before anything in it is queued (e.g. its detached signature).
    /// Accepts by default.
    async fn verify_document(
        &self,
        _found: &SourcedUpgrade,
        _source: &dyn UpgradeSource,
    ) -> Result<(), Refusal> {
        Ok(())
    }

    /// Accepts or refuses, with the reason shown to the operator. May use `source` to fetch a
    /// detached signature.
    async fn verify(
        &self,
        candidate: &Candidate<'_>,
        source: Option<&dyn UpgradeSource>,
    ) -> Result<(), Refusal>;

    /// [`Verifier::verify`], with what the verifier said when it accepted (a command's stderr,
    /// a plugin's reason), for the audit trail in the log.
    async fn verify_with_message(
        &self,
        candidate: &Candidate<'_>,
        source: Option<&dyn UpgradeSource>,
    ) -> Result<Option<String>, Refusal> {
        self.verify(candidate, source).await.map(|()| None)
    }
}

/// The verifiers' checks of a feed document before anything in it is queued (e.g. its detached
/// signature). `Err`: the note saying which refused it and why. A refusal makes the source ask
/// for the whole document next time: its signature may be fixed without the document changing.
pub async fn check_document(
    verifiers: &[std::sync::Arc<dyn Verifier>],
    found: &SourcedUpgrade,
    source: &dyn UpgradeSource,
) -> Result<(), String> {
    for v in verifiers {
        if let Err(r) = v.verify_document(found, source).await {
            source.forget_validators();
            return Err(format!(
                "the upstream document was refused by {}: {}",
                v.name(),
                r.reason
            ));
        }
    }
    Ok(())
}
