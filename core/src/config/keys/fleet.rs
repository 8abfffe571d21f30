//! The keys of `[fleet]`: upgrade slots, canaries and the fleet hold, coordinated on etcd.

use super::{FlagStyle, KeyDef, Kind};

/// In file order.
pub(super) const KEYS: &[KeyDef] = &[
    key!(
        "fleet",
        "etcd_endpoints",
        ["NYMVISOR_FLEET_ETCD_ENDPOINTS"],
        "fleet-etcd-endpoints",
        Value,
        Kind::List,
        "etcd v3 client URLs, comma-separated (http(s)://host:2379); unset: upgrades are not coordinated"
    ),
    key!(
        "fleet",
        "group",
        ["NYMVISOR_FLEET_GROUP"],
        "fleet-group",
        Value,
        Kind::Str,
        "The fleet group whose members share the upgrade slots [default: default]"
    ),
    key!(
        "fleet",
        "slots",
        ["NYMVISOR_FLEET_SLOTS"],
        "fleet-slots",
        Value,
        Kind::Count,
        "At most this many members of the group between their stop and their confirmation [default: 1]"
    ),
    key!(
        "fleet",
        "member",
        ["NYMVISOR_FLEET_MEMBER"],
        "fleet-member",
        Value,
        Kind::OptStr,
        "This node's name in the group [default: <hostname>/<instance id>]"
    ),
    key!(
        "fleet",
        "canary",
        ["NYMVISOR_FLEET_CANARY"],
        "fleet-canary",
        Value,
        Kind::Bool,
        "A canary: the other members apply a version only after a canary confirmed it [default: false]"
    ),
    key!(
        "fleet",
        "etcd_ca_file",
        ["NYMVISOR_FLEET_ETCD_CA_FILE"],
        "fleet-etcd-ca-file",
        Value,
        Kind::OptStr,
        "PEM file of the CA that signed the etcd servers' certificates (only it is trusted)"
    ),
    key!(
        "fleet",
        "etcd_cert_file",
        ["NYMVISOR_FLEET_ETCD_CERT_FILE"],
        "fleet-etcd-cert-file",
        Value,
        Kind::OptStr,
        "PEM client certificate for etcd (with --fleet-etcd-key-file)"
    ),
    key!(
        "fleet",
        "etcd_key_file",
        ["NYMVISOR_FLEET_ETCD_KEY_FILE"],
        "fleet-etcd-key-file",
        Value,
        Kind::OptStr,
        "PEM private key of the etcd client certificate"
    ),
    key!(
        "fleet",
        "etcd_user",
        ["NYMVISOR_FLEET_ETCD_USER"],
        "fleet-etcd-user",
        Value,
        Kind::OptStr,
        "etcd user nymvisor authenticates as"
    ),
    key!(
        "fleet",
        "etcd_password_env",
        ["NYMVISOR_FLEET_ETCD_PASSWORD_ENV"],
        "fleet-etcd-password-env",
        Value,
        Kind::Str,
        "Environment variable holding the etcd user's password [default: NYMVISOR_FLEET_ETCD_PASSWORD]"
    ),
];
