//! nymvisor's own build information, captured by `build.rs`.

use nymvisor_core::model::BuildInfo;

pub fn build_info() -> BuildInfo {
    let s = |v: &str| Some(v.to_owned());
    BuildInfo {
        build_timestamp: s(env!("NYMVISOR_BUILD_TIMESTAMP")),
        commit_sha: s(env!("NYMVISOR_COMMIT_SHA")),
        commit_timestamp: s(env!("NYMVISOR_COMMIT_TIMESTAMP")),
        commit_branch: s(env!("NYMVISOR_COMMIT_BRANCH")),
        rustc_version: s(env!("NYMVISOR_RUSTC_VERSION")),
        rustc_channel: s(env!("NYMVISOR_RUSTC_CHANNEL")),
        cargo_profile: s(env!("NYMVISOR_CARGO_PROFILE")),
        cargo_triple: s(env!("NYMVISOR_CARGO_TRIPLE")),
        ..BuildInfo::new("nymvisor", env!("CARGO_PKG_VERSION"))
    }
}
