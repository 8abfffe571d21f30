//! # nymvisor-verifiers
//!
//! Implementations of [`nymvisor_core::verify::Verifier`]:
//! - [`checksum::ChecksumVerifier`]: sha256, sha512, sha3-256, sha3-512, computed while the
//!   download streams in;
//!
//! [`from_config`] builds the configured chain (the build-information check is built into the
//! core's prepare stage and always runs last).

pub mod checksum;

use std::sync::Arc;

use nymvisor_core::config::Config;
use nymvisor_core::verify::Verifier;

/// The verifiers for a configuration, in the order they run.
pub fn from_config(config: &Config) -> Vec<Arc<dyn Verifier>> {
    vec![Arc::new(checksum::ChecksumVerifier {
        enforce: config.daemon.enforce_download_checksum,
    })]
}
