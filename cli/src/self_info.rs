//! nymvisor's own build information, captured by `build.rs`.

use nymvisor_core::model::BuildInfo;

pub fn build_info() -> BuildInfo {
    BuildInfo {
        binary_name: "nymvisor".to_owned(),
        build_timestamp: env!("NYMVISOR_BUILD_TIMESTAMP").to_owned(),
        build_version: env!("CARGO_PKG_VERSION").to_owned(),
        commit_sha: env!("NYMVISOR_COMMIT_SHA").to_owned(),
        commit_timestamp: env!("NYMVISOR_COMMIT_TIMESTAMP").to_owned(),
        commit_branch: env!("NYMVISOR_COMMIT_BRANCH").to_owned(),
        rustc_version: env!("NYMVISOR_RUSTC_VERSION").to_owned(),
        rustc_channel: env!("NYMVISOR_RUSTC_CHANNEL").to_owned(),
        cargo_profile: env!("NYMVISOR_CARGO_PROFILE").to_owned(),
        cargo_triple: Some(env!("NYMVISOR_CARGO_TRIPLE").to_owned()),
    }
}
