//! Which instance a command is about: `NYMVISOR_CONFIG_PATH`, `NYMVISOR_ID`, or the only one
//! there is; and its effective configuration (the file with the environment applied).

use std::path::PathBuf;

use super::Config;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::names::validate_name;
use crate::paths::NymvisorHome;

/// Finds the config file a command (other than `init`) uses:
/// `$NYMVISOR_CONFIG_PATH`; else the default path for `$NYMVISOR_ID`; else the only instance;
/// else an error listing the instances.
pub fn locate(env: &Env) -> Result<PathBuf> {
    if let Some(path) = env.get_non_empty("NYMVISOR_CONFIG_PATH") {
        return Ok(PathBuf::from(path));
    }
    let home = NymvisorHome::from_env(env)?;
    if let Some(id) = env.get_non_empty("NYMVISOR_ID") {
        validate_name(id).map_err(|reason| Error::EnvValue {
            var: "NYMVISOR_ID".into(),
            value: id.into(),
            message: reason.into(),
        })?;
        let path = home.config_path(id);
        if path.is_file() {
            return Ok(path);
        }
        return Err(Error::NoInstance(format!(
            "no nymvisor instance `{id}` (no {}); {}",
            path.display(),
            describe_instances(&home)?
        )));
    }
    let instances = home.instances()?;
    match instances.as_slice() {
        [only] => Ok(home.config_path(only)),
        [] => Err(Error::NoInstance(format!(
            "no nymvisor instance under {}; create one with `nymvisor init <DAEMON_BINARY> --daemon-home <DIR>`",
            home.instances_dir().display()
        ))),
        many => Err(Error::NoInstance(format!(
            "{} nymvisor instances exist ({}); choose one with NYMVISOR_ID=<id> or NYMVISOR_CONFIG_PATH=<file>",
            many.len(),
            many.join(", ")
        ))),
    }
}

fn describe_instances(home: &NymvisorHome) -> Result<String> {
    let instances = home.instances()?;
    Ok(if instances.is_empty() {
        "no instance exists yet; create one with `nymvisor init`".to_owned()
    } else {
        format!("existing instances: {}", instances.join(", "))
    })
}

/// Locates, loads, applies the environment and validates: the effective configuration.
pub fn load_effective(env: &Env) -> Result<(PathBuf, Config)> {
    let path = locate(env)?;
    let file = Config::load_file(&path)?;
    // the daemon an instance manages is fixed at `init`: another name in the environment is a
    // mix-up (an env file of another node), not an override
    if !file.daemon.name.is_empty()
        && let Some(name) = env.get_non_empty("DAEMON_NAME")
        && name != file.daemon.name
    {
        return Err(Error::EnvValue {
            var: "DAEMON_NAME".into(),
            value: name.to_owned(),
            message: format!(
                "this instance ({}) manages {}; unset DAEMON_NAME, or choose the instance of {name} with NYMVISOR_ID",
                path.display(),
                file.daemon.name
            ),
        });
    }
    let config = file.apply_env(env)?.validated()?;
    Ok((path, config))
}
