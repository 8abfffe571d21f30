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
//! `upgrade`, `binaryPath`, `digests` (`sha256` always), `downloaded`, `platform`); the answer is
//! `{"accept":true,"reason":"…"}` (the reason is optional: it goes to nymvisor's log, the audit
//! trail), `{"accept":false,"reason":"…"}` (refused until the entry changes or `nymvisor retry`),
//! or `{"accept":false,"notNow":true,"reason":"…"}` (try again later: retried with a backoff).
//! Memory is freed by the side that allocated it: nymvisor passes the request and keeps
//! ownership; the plugin allocates the answer and frees it in `nymvisor_plugin_free`.
//!
//! Lifetime: nymvisor loads the library for each job (in a child process) and keeps no state
//! between candidates; a plugin that needs state keeps it in files (e.g. under
//! `NYMVISOR_VERIFIER_WRITABLE_PATHS`).
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
//! Panics inside `verify` are caught at the boundary and become a "not now" (the check failed,
//! not the binary); [`VerifierPlugin::verdict`] can answer "not now" itself, e.g. when a company
//! service the check asks is down.

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

    /// The candidate binary's sha256 (hex), which nymvisor always computes.
    pub fn sha256(&self) -> Option<&str> {
        self.digests.get("sha256").map(String::as_str)
    }
}

/// What a plugin says about a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted; the message (optional) is logged as the audit trail.
    Accept(Option<String>),
    /// Refused for good (until the entry changes or `nymvisor retry`).
    Refuse(String),
    /// Not now: the check could not decide (its service is down…); tried again later.
    NotNow(String),
}

/// A verifier plugin: accept (`Ok`) or refuse with a reason — or, with [`VerifierPlugin::verdict`],
/// any [`Verdict`].
pub trait VerifierPlugin: Default {
    /// Shown in nymvisor's logs.
    const NAME: &'static str;

    fn verify(&self, request: &Request) -> Result<(), String>;

    /// The full verdict; by default [`VerifierPlugin::verify`]'s.
    fn verdict(&self, request: &Request) -> Verdict {
        match self.verify(request) {
            Ok(()) => Verdict::Accept(None),
            Err(reason) => Verdict::Refuse(reason),
        }
    }
}

/// Runs `P::verify` on a raw request; used by [`export_verifier!`]. Never unwinds.
///
/// # Safety
/// `request` is null or a valid NUL-terminated string that outlives the call.
pub unsafe fn handle<P: VerifierPlugin>(request: *const c_char) -> *mut c_char {
    // a panic's message goes into the answer (nymvisor logs it as a field), not raw onto
    // nymvisor's stderr (a JSON log would get a line that is no JSON)
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let answer = std::panic::catch_unwind(|| {
        if request.is_null() {
            return Err("no request".to_owned());
        }
        // SAFETY: nymvisor passes a valid NUL-terminated string that outlives this call.
        let text = unsafe { CStr::from_ptr(request) };
        let request: Request = serde_json::from_slice(text.to_bytes())
            .map_err(|e| format!("unreadable request: {e}"))?;
        Ok(P::default().verdict(&request))
    })
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Ok(Verdict::NotNow(format!("the plugin panicked: {what}")))
    });
    let json = match answer {
        Ok(Verdict::Accept(None)) => serde_json::json!({ "accept": true }),
        Ok(Verdict::Accept(Some(m))) => serde_json::json!({ "accept": true, "reason": m }),
        Ok(Verdict::Refuse(reason)) => serde_json::json!({ "accept": false, "reason": reason }),
        // a request it cannot read is the check's failure, not the binary's
        Ok(Verdict::NotNow(reason)) | Err(reason) => {
            serde_json::json!({ "accept": false, "notNow": true, "reason": reason })
        }
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
