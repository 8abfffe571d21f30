//! # nymvisor-verifiers
//!
//! Implementations of [`nymvisor_core::verify::Verifier`]:
//! - [`checksum::ChecksumVerifier`]: sha256, sha512, sha3-256, sha3-512, computed while the
//!   download streams in;
//! - [`signature::MinisignVerifier`]: minisign signatures against pinned public keys.
//!
//! And [`signer::MinisignSigner`], the operator's secret key that signs a private mirror.
//!
//! [`from_config`] builds the configured chain (the build-information check is built into the
//! core's prepare stage and always runs last).

pub mod checksum;
pub mod error;
pub mod signature;
pub mod signer;

pub use error::Error;

use std::sync::Arc;

use nymvisor_core::config::Config;
use nymvisor_core::verify::Verifier;

/// The verifiers for a configuration, in the order they run (checksum, then signature).
/// A configured key that cannot be parsed is an error.
pub fn from_config(config: &Config) -> Result<Vec<Arc<dyn Verifier>>, Error> {
    let mut chain: Vec<Arc<dyn Verifier>> = vec![Arc::new(checksum::ChecksumVerifier {
        enforce: config.daemon.enforce_download_checksum,
    })];
    let required = config.signature_required();
    if required || !config.daemon.minisign_public_keys.is_empty() {
        chain.push(Arc::new(
            signature::MinisignVerifier::new(&config.daemon.minisign_public_keys, required)?
                .with_feed_threshold(config.daemon.feed_signature_threshold),
        ));
    }
    Ok(chain)
}
