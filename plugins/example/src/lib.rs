//! Example verifier plugin: only versions listed in `NYMVISOR_ALLOWED_VERSIONS`
//! (comma-separated, read from nymvisor's environment) may be installed. Copy this crate to
//! start your own: a type, one method, one macro call.

use nymvisor_plugin_api::{Request, VerifierPlugin, export_verifier};

#[derive(Default)]
struct AllowList;

impl VerifierPlugin for AllowList {
    const NAME: &'static str = "version allow-list";

    fn verify(&self, request: &Request) -> Result<(), String> {
        let allowed = std::env::var("NYMVISOR_ALLOWED_VERSIONS").unwrap_or_default();
        if allowed
            .split(',')
            .map(str::trim)
            .any(|v| v == request.version())
        {
            Ok(())
        } else {
            Err(format!(
                "{} {} is not in NYMVISOR_ALLOWED_VERSIONS ({allowed})",
                request.daemon,
                request.version()
            ))
        }
    }
}

export_verifier!(AllowList);
