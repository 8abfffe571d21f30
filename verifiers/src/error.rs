//! The error type of the verifiers crate: what is wrong with the verification settings.

/// A verifier cannot be set up from the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configured public key cannot be read.
    #[error(
        "DAEMON_MINISIGN_PUBLIC_KEYS: {key:?} is not a minisign public key ({reason}); give the key itself, the base64 line of a minisign .pub file (56 characters such as RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3), not a file path nor the whole file; several are separated by commas"
    )]
    Key { key: String, reason: String },

    /// Signatures are required but there is no key to check them with.
    #[error(
        "a signature is required (DAEMON_REQUIRE_SIGNATURE) but no DAEMON_MINISIGN_PUBLIC_KEYS are configured"
    )]
    NoKeys,

    /// A secret key for `mirror sync` cannot be used.
    #[error("--sign-key {}: {reason}", path.display())]
    SecretKey {
        path: std::path::PathBuf,
        reason: String,
    },
}
