//! Fail points for crash-safety tests: with the `failpoints` feature, `hit("name", active)`
//! kills nymvisor with SIGKILL when `active` (from `NYMVISOR_FAILPOINT`) names that point.
//! Without the feature (release builds) it compiles to nothing.

/// Kills the process if `name` is the active fail point.
#[inline]
pub fn hit(name: &str, active: Option<&str>) {
    #[cfg(feature = "failpoints")]
    if active == Some(name) {
        tracing::error!("fail point `{name}` reached: killing nymvisor");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = (name, active);
}

/// Whether `name` is the active fail point (always false without the feature). A pause point
/// may carry `@<file>`: it resumes once that file exists ([`resume_file`]).
#[inline]
pub fn is_active(name: &str, active: Option<&str>) -> bool {
    cfg!(feature = "failpoints") && active.is_some_and(|a| a.split('@').next() == Some(name))
}

/// The file whose creation resumes the active pause point, if it names one.
pub fn resume_file(active: Option<&str>) -> Option<std::path::PathBuf> {
    active?.split_once('@').map(|(_, f)| f.into())
}
