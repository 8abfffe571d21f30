//! Misbehaves as `NYMVISOR_TEST_PLUGIN` says: `panic`, `hang`, `abort` (ends the process it runs
//! in), `garbage` (answers something that is not JSON), `abi` (claims ABI version 99), `no-token` (refuses when `GITHUB_TOKEN` is in its
//! environment); anything else accepts. As an upstream source
//! (`plugin:test-plugin`) it offers the upgrade-info document in the file named by
//! `NYMVISOR_TEST_PLUGIN_FEED` (or none).

use std::ffi::c_char;

use nymvisor_plugin_api::{Request, VerifierPlugin};

fn mode() -> String {
    std::env::var("NYMVISOR_TEST_PLUGIN").unwrap_or_default()
}

#[derive(Default)]
struct Misbehave;

impl VerifierPlugin for Misbehave {
    const NAME: &'static str = "test-plugin";

    fn verify(&self, _request: &Request) -> Result<(), String> {
        match mode().as_str() {
            "panic" => panic!("deliberate panic"),
            "abort" => std::process::abort(),
            "hang" => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            "no-token" if std::env::var_os("GITHUB_TOKEN").is_some() => {
                Err("the GitHub token reached the plugin's process".to_owned())
            }
            _ => Ok(()),
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn nymvisor_plugin_abi_version() -> u32 {
    if mode() == "abi" {
        99
    } else {
        nymvisor_plugin_api::ABI_VERSION
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn nymvisor_plugin_name() -> *const c_char {
    c"test-plugin".as_ptr()
}

/// # Safety
/// `request` is null or a valid NUL-terminated string that outlives the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nymvisor_plugin_verify(request: *const c_char) -> *mut c_char {
    if mode() == "garbage" {
        return std::ffi::CString::new("this is not json")
            .map(|c| c.into_raw())
            .unwrap_or(std::ptr::null_mut());
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe { nymvisor_plugin_api::handle::<Misbehave>(request) }
}

/// # Safety
/// `answer` is null or a pointer returned by `nymvisor_plugin_verify`, freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nymvisor_plugin_free(answer: *mut c_char) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { nymvisor_plugin_api::free(answer) }
}

/// Optional source entry point: the latest upgrade-info document, or `null`.
///
/// # Safety
/// `_request` is null or a valid NUL-terminated string that outlives the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nymvisor_plugin_latest(_request: *const c_char) -> *mut c_char {
    let doc = std::env::var("NYMVISOR_TEST_PLUGIN_FEED")
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_else(|| "null".to_owned());
    std::ffi::CString::new(doc)
        .map(|c| c.into_raw())
        .unwrap_or(std::ptr::null_mut())
}
