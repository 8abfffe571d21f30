//! The keys of `[tuning]`: limits for slow links and unusual hosts.

use super::{FlagStyle, KeyDef, Kind};

/// In file order.
pub(super) const KEYS: &[KeyDef] = &[
    key!(
        "tuning",
        "http_connect_timeout",
        ["NYMVISOR_HTTP_CONNECT_TIMEOUT"],
        "http-connect-timeout",
        Value,
        Kind::Duration,
        "Longest wait for an HTTP connection [default: 10s]"
    ),
    key!(
        "tuning",
        "http_idle_timeout",
        ["NYMVISOR_HTTP_IDLE_TIMEOUT"],
        "http-idle-timeout",
        Value,
        Kind::Duration,
        "Longest wait for the next bytes of an HTTP answer [default: 30s]"
    ),
    key!(
        "tuning",
        "http_document_timeout",
        ["NYMVISOR_HTTP_DOCUMENT_TIMEOUT"],
        "http-document-timeout",
        Value,
        Kind::Duration,
        "Longest time for a whole feed document or signature [default: 60s]"
    ),
    key!(
        "tuning",
        "http_download_timeout",
        ["NYMVISOR_HTTP_DOWNLOAD_TIMEOUT"],
        "http-download-timeout",
        Value,
        Kind::Duration,
        "Longest time for a whole binary download [default: 30m]"
    ),
    key!(
        "tuning",
        "max_binary_size",
        ["NYMVISOR_MAX_BINARY_SIZE"],
        "max-binary-size",
        Value,
        Kind::Bytes,
        "Largest binary accepted, in bytes (or KiB/MiB/GiB) [default: 512MiB]"
    ),
    key!(
        "tuning",
        "verifier_timeout",
        ["NYMVISOR_VERIFIER_TIMEOUT"],
        "verifier-timeout",
        Value,
        Kind::Duration,
        "Longest time a verifier plugin or command gets [default: 60s]"
    ),
    key!(
        "tuning",
        "backup_min_free",
        ["DAEMON_BACKUP_MIN_FREE"],
        "backup-min-free",
        Value,
        Kind::Bytes,
        "Free space that must remain after a backup (bytes, or KiB/MiB/GiB) [default: 64MiB]"
    ),
    key!(
        "tuning",
        "backup_compression",
        ["DAEMON_BACKUP_COMPRESSION"],
        "backup-compression",
        Value,
        Kind::Choice("none|zstd"),
        "Compression of `archive` backups"
    ),
];
