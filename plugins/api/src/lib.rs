//! # nymvisor-plugin-api
//!
//! A nymvisor verifier plugin is a dynamic library (`cdylib`) exporting four C functions
//! (ABI version 1, also described in `plugins/nymvisor_plugin.h`):
//!
//! ```c
//! uint32_t    nymvisor_plugin_abi_version(void);        // must return 1
//! const char *nymvisor_plugin_name(void);               // static, NUL-terminated
//! char       *nymvisor_plugin_verify(const char *req);  // JSON in, JSON out, allocated by the plugin
//! void        nymvisor_plugin_free(char *answer);       // frees what verify returned
//! ```
//!
//! The request is the JSON object verifier commands get on stdin (`abiVersion`, `daemon`,
//! `upgrade`, `binaryPath`, `digests`, `downloaded`, `platform`); the answer is
//! `{"accept":true}` or `{"accept":false,"reason":"…"}`. Memory is freed by the side that
//! allocated it: nymvisor passes the request and keeps ownership; the plugin allocates the answer
//! and frees it in `nymvisor_plugin_free`.
//!
//! With this crate a Rust plugin is a type and one method:
//!
//! ```ignore
//! #[derive(Default)]
//! struct AllowList;
//! impl nymvisor_plugin_api::VerifierPlugin for AllowList {
//!     const NAME: &'static str = "allow-list";
//!     fn verify(&self, request: &nymvisor_plugin_api::Request) -> Result<(), String> { Ok(()) }
//! }
//! nymvisor_plugin_api::export_verifier!(AllowList);
//! ```
//!
//! Panics inside `verify` are caught at the boundary and become a refusal.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char};

use serde::Deserialize;

/// The ABI version this crate implements.
pub const ABI_VERSION: u32 = 1;

/// What nymvisor asks a plugin about.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub abi_version: u32,
    pub daemon: String,
    /// The upgrade-info document (name, version, platforms, …).
    pub upgrade: serde_json::Value,
    pub binary_path: String,
    #[serde(default)]
    pub digests: BTreeMap<String, String>,
    #[serde(default)]
    pub downloaded: bool,
    #[serde(default)]
    pub platform: Option<serde_json::Value>,
}

impl Request {
    /// The upgrade's version.
    pub fn version(&self) -> &str {
        self.upgrade["version"].as_str().unwrap_or_default()
    }

    /// The upgrade's name.
    pub fn name(&self) -> &str {
        self.upgrade["name"].as_str().unwrap_or_default()
    }
}

/// A verifier plugin: accept (`Ok`) or refuse with a reason.
pub trait VerifierPlugin: Default {
    /// Shown in nymvisor's logs.
    const NAME: &'static str;

    fn verify(&self, request: &Request) -> Result<(), String>;
}

/// Runs `P::verify` on a raw request; used by [`export_verifier!`]. Never unwinds.
///
/// # Safety
/// `request` is null or a valid NUL-terminated string that outlives the call.
pub unsafe fn handle<P: VerifierPlugin>(request: *const c_char) -> *mut c_char {
    let answer = std::panic::catch_unwind(|| {
        if request.is_null() {
            return Err("no request".to_owned());
        }
        // SAFETY: nymvisor passes a valid NUL-terminated string that outlives this call.
        let text = unsafe { CStr::from_ptr(request) };
        let request: Request = serde_json::from_slice(text.to_bytes())
            .map_err(|e| format!("unreadable request: {e}"))?;
        P::default().verify(&request)
    })
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(format!("the plugin panicked: {what}"))
    });
    let json = match answer {
        Ok(()) => serde_json::json!({ "accept": true }),
        Err(reason) => serde_json::json!({ "accept": false, "reason": reason }),
    };
    CString::new(json.to_string().replace('\0', " "))
        .map(CString::into_raw)
        .unwrap_or(std::ptr::null_mut())
}

/// Frees an answer made by [`handle`]; used by [`export_verifier!`].
///
/// # Safety
/// `answer` is null or a pointer returned by [`handle`] that was not freed yet.
pub unsafe fn free(answer: *mut c_char) {
    if !answer.is_null() {
        // SAFETY: `answer` came from `CString::into_raw` in `handle`, and is freed once.
        drop(unsafe { CString::from_raw(answer) });
    }
}

/// Exports the C ABI for a [`VerifierPlugin`] type.
#[macro_export]
macro_rules! export_verifier {
    ($plugin:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn nymvisor_plugin_abi_version() -> u32 {
            $crate::ABI_VERSION
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn nymvisor_plugin_name() -> *const ::std::ffi::c_char {
            static NAME: ::std::sync::OnceLock<::std::ffi::CString> = ::std::sync::OnceLock::new();
            NAME.get_or_init(|| {
                ::std::ffi::CString::new(<$plugin as $crate::VerifierPlugin>::NAME)
                    .unwrap_or_default()
            })
            .as_ptr()
        }

        /// # Safety
        /// `request` is null or a valid NUL-terminated string that outlives the call.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn nymvisor_plugin_verify(
            request: *const ::std::ffi::c_char,
        ) -> *mut ::std::ffi::c_char {
            // SAFETY: forwarded from the caller's contract.
            unsafe { $crate::handle::<$plugin>(request) }
        }

        /// # Safety
        /// `answer` is null or a pointer returned by `nymvisor_plugin_verify`, freed once.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn nymvisor_plugin_free(answer: *mut ::std::ffi::c_char) {
            // SAFETY: forwarded from the caller's contract.
            unsafe { $crate::free(answer) }
        }
    };
}
