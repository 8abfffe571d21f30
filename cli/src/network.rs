//! Where the network work runs — nowhere, in this process, or in the sandboxed helper — and
//! the source and verifiers it runs with: chosen in this one place, for `run` (the supervisor)
//! and for `__helper` (one of its jobs).

use std::sync::Arc;

use anyhow::Result;
use nymvisor_core::config::UpstreamSource;
use nymvisor_core::env::Env;
use nymvisor_core::helper::fleet::{FleetLink, Membership};
use nymvisor_core::instance::Instance;
use nymvisor_core::run::Upstream;
use nymvisor_core::source::UpgradeSource;
use nymvisor_core::verify::Verifier;
use nymvisor_core::{helper, sandbox};

/// The checks every candidate goes through, in order.
type Verifiers = Vec<Arc<dyn Verifier>>;

/// For `run`: with `network_helper` (the default) every poll and preparation is a helper job
/// and the supervisor builds no source — but checks it at start, so a configuration error
/// shows then (a source plugin in a process of its own: it is never loaded into the
/// supervisor); without, the source runs here.
pub async fn for_supervisor(instance: &Instance, env: &Env) -> Result<(Upstream, Verifiers)> {
    let config = &instance.config;
    let verifiers = verifiers(instance, env, false)?;
    if !config.nymvisor.network_helper {
        let source = nymvisor_plugins::upstream(config, env)?;
        return Ok((Upstream::InProcess(source), verifiers));
    }
    report_sandbox();
    let describe = match &config.nymvisor.upstream_source {
        UpstreamSource::Plugin(name) => {
            nymvisor_plugins::dylib::check_source_isolated(
                &config.nymvisor.plugin_paths,
                name,
                config.tuning.verifier_timeout,
                &env.without(&config.nymvisor.github_token_env),
            )
            .await?;
            Some(format!("the source plugin `{name}`"))
        }
        _ => nymvisor_plugins::upstream(config, env)?.map(|s| s.describe()),
    };
    // the supervisor never touches the network itself
    let helper = helper::Helper::new(describe, instance, env);
    Ok((Upstream::Helper(Arc::new(helper)), verifiers))
}

/// For a `__helper` job: the source and the verifiers, plugins loaded here (before the sandbox
/// closes), for the job to run in this process.
pub fn for_helper_job(
    instance: &Instance,
    env: &Env,
) -> Result<(Option<Arc<dyn UpgradeSource>>, Verifiers)> {
    let source = nymvisor_plugins::upstream(&instance.config, env)?;
    Ok((source, verifiers(instance, env, true)?))
}

/// The checks, in order: checksum, signature, plugins (`in_process`: loaded here, in a helper
/// job; otherwise each call in a process of its own), verifier commands.
fn verifiers(instance: &Instance, env: &Env, in_process: bool) -> Result<Verifiers> {
    let mut verifiers = nymvisor_verifiers::from_config(&instance.config)?;
    verifiers.extend(nymvisor_plugins::from_config(
        &instance.config,
        env,
        in_process,
    ));
    Ok(verifiers)
}

/// Says once, at start, how much of the network helper's sandbox this kernel enforces.
fn report_sandbox() {
    match sandbox::landlock_abi() {
        Some(abi) => {
            tracing::debug!("the network helper runs under Landlock (ABI {abi}) with no_new_privs")
        }
        None => tracing::warn!(
            "this kernel has no Landlock: the network helper runs with no_new_privs but without its file-system sandbox"
        ),
    }
}

/// Where `run`'s fleet jobs go (`None`: no fleet is configured): with the network helper, its
/// jobs; without, a store in this process. The store is built here either way, so that a TLS
/// file that cannot be read or a password variable that is not set stops `run` at its start.
pub fn fleet_for_supervisor(
    instance: &Instance,
    env: &Env,
    upstream: &Upstream,
) -> Result<Option<FleetLink>> {
    let Some(store) = fleet_store(instance, env)? else {
        return Ok(None);
    };
    Ok(Some(match upstream.helper() {
        Some(h) => FleetLink::Helper(h.clone()),
        None => FleetLink::InProcess(store, Membership::of(instance)),
    }))
}

/// Where a `fleet` command's job goes: a helper like `run`'s (its temporary directory outside
/// the instance, which the command's user may not own), or this process.
pub fn fleet_for_command(instance: &Instance, env: &Env) -> Result<FleetLink> {
    let Some(store) = fleet_store(instance, env)? else {
        anyhow::bail!(
            "no fleet is configured for instance `{}`: set NYMVISOR_FLEET_ETCD_ENDPOINTS (or `[fleet] etcd_endpoints` in {})",
            instance.config.id(),
            instance.config_path.display()
        );
    };
    if !instance.config.nymvisor.network_helper {
        return Ok(FleetLink::InProcess(store, Membership::of(instance)));
    }
    let tmp = std::env::temp_dir().join(format!("nymvisor-fleet-{}", std::process::id()));
    let helper = helper::Helper::new(None, instance, env).with_tmp_root(tmp);
    Ok(FleetLink::Helper(Arc::new(helper)))
}

/// The fleet's store for `[fleet]` as resolved (`None`: not configured).
pub fn fleet_store(
    instance: &Instance,
    env: &Env,
) -> Result<Option<Arc<dyn nymvisor_core::fleet::FleetStore>>> {
    let store = nymvisor_sources::etcd::from_config(&instance.config.fleet, env)?;
    Ok(store.map(|s| Arc::new(s) as Arc<dyn nymvisor_core::fleet::FleetStore>))
}
