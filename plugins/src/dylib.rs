//! Dynamic-library verifier plugins (`NYMVISOR_PLUGIN_PATHS`), loaded with `libloading` through
//! the versioned C ABI described in `nymvisor-plugin-api` and `plugins/nymvisor_plugin.h`.
//!
//! Isolation: a plugin that is missing or has another ABI version refuses upgrades (retried
//! later, so fixing the file is enough); a call runs on a blocking thread with a timeout, so a
//! plugin that hangs refuses the upgrade instead of stalling nymvisor (its thread is abandoned);
//! an answer that is not a verdict refuses; plugins built with the helper crate turn their panics
//! into refusals. A plugin written by hand in another language must not unwind across the C
//! boundary.

use std::ffi::{CStr, CString, c_char};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nymvisor_core::source::UpgradeSource;
use nymvisor_core::verify::{Candidate, Rejection, Verifier};

use crate::exec::ExecVerifier;

/// The ABI version nymvisor speaks.
pub const ABI_VERSION: u32 = 1;

type AbiFn = unsafe extern "C" fn() -> u32;
type NameFn = unsafe extern "C" fn() -> *const c_char;
type VerifyFn = unsafe extern "C" fn(*const c_char) -> *mut c_char;
type FreeFn = unsafe extern "C" fn(*mut c_char);

/// A loaded plugin; the function pointers stay valid as long as `_lib` is alive.
struct Loaded {
    _lib: libloading::Library,
    name: String,
    verify: VerifyFn,
    free: FreeFn,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("name", &self.name).finish()
    }
}

fn load(path: &PathBuf) -> Result<Loaded, String> {
    if !path.is_file() {
        return Err(format!("the plugin {} does not exist", path.display()));
    }
    // SAFETY: loading a library runs its initialisers; the operator configured this file as a
    // nymvisor plugin, which is the trust decision this feature exists for.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
    // SAFETY: each symbol is looked up with the type the ABI gives it.
    let (abi, name, verify, free) = unsafe {
        let get = |sym: &[u8]| {
            format!(
                "{} lacks {}",
                path.display(),
                String::from_utf8_lossy(&sym[..sym.len() - 1])
            )
        };
        let abi: AbiFn = *lib
            .get::<AbiFn>(b"nymvisor_plugin_abi_version\0")
            .map_err(|_| get(b"nymvisor_plugin_abi_version\0"))?;
        let name: NameFn = *lib
            .get::<NameFn>(b"nymvisor_plugin_name\0")
            .map_err(|_| get(b"nymvisor_plugin_name\0"))?;
        let verify: VerifyFn = *lib
            .get::<VerifyFn>(b"nymvisor_plugin_verify\0")
            .map_err(|_| get(b"nymvisor_plugin_verify\0"))?;
        let free: FreeFn = *lib
            .get::<FreeFn>(b"nymvisor_plugin_free\0")
            .map_err(|_| get(b"nymvisor_plugin_free\0"))?;
        (abi, name, verify, free)
    };
    // SAFETY: ABI functions take no arguments; the name is a static NUL-terminated string.
    let version = unsafe { abi() };
    if version != ABI_VERSION {
        return Err(format!(
            "{} speaks plugin ABI version {version}, this nymvisor speaks {ABI_VERSION}; rebuild the plugin",
            path.display()
        ));
    }
    let name_ptr = unsafe { name() };
    let name = if name_ptr.is_null() {
        path.display().to_string()
    } else {
        // SAFETY: checked non-null; the ABI promises a static NUL-terminated string.
        unsafe { CStr::from_ptr(name_ptr) }
            .to_string_lossy()
            .into_owned()
    };
    Ok(Loaded {
        _lib: lib,
        name,
        verify,
        free,
    })
}

/// See the module docs.
#[derive(Debug)]
pub struct DylibVerifier {
    path: PathBuf,
    timeout: Duration,
    label: String,
    loaded: Mutex<Option<Arc<Loaded>>>,
    /// A call is running (possibly one abandoned at its timeout): at most one thread per plugin
    /// can ever be stuck in it.
    busy: Arc<std::sync::atomic::AtomicBool>,
}

impl DylibVerifier {
    /// Tries to load the plugin now (a failure is logged and retried at the first verification).
    pub fn new(path: PathBuf, timeout: Duration) -> DylibVerifier {
        let (label, loaded) = match load(&path) {
            Ok(l) => (format!("plugin {}", l.name), Some(Arc::new(l))),
            Err(e) => {
                tracing::error!("verifier plugin: {e}; upgrades are refused until it loads");
                (format!("plugin {}", path.display()), None)
            }
        };
        DylibVerifier {
            path,
            timeout,
            label,
            loaded: Mutex::new(loaded),
            busy: Arc::default(),
        }
    }

    fn loaded(&self) -> Result<Arc<Loaded>, Rejection> {
        let mut guard = self
            .loaded
            .lock()
            .map_err(|_| Rejection::transient("plugin state poisoned"))?;
        if let Some(l) = guard.as_ref() {
            return Ok(l.clone());
        }
        let l = Arc::new(load(&self.path).map_err(Rejection::transient)?);
        *guard = Some(l.clone());
        Ok(l)
    }
}

#[async_trait::async_trait]
impl Verifier for DylibVerifier {
    fn name(&self) -> &str {
        &self.label
    }

    async fn verify(
        &self,
        c: &Candidate<'_>,
        _source: Option<&dyn UpgradeSource>,
    ) -> Result<(), Rejection> {
        let loaded = self.loaded()?;
        let request = CString::new(ExecVerifier::request(c).to_string())
            .map_err(|_| Rejection::permanent("the request contains a NUL byte"))?;
        use std::sync::atomic::Ordering;
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(Rejection::transient(
                "its previous call has not returned yet",
            ));
        }
        let busy = self.busy.clone();
        let call = tokio::task::spawn_blocking(move || {
            struct Done(Arc<std::sync::atomic::AtomicBool>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.store(false, std::sync::atomic::Ordering::SeqCst);
                }
            }
            let _done = Done(busy);
            // SAFETY: `request` is a valid C string for the duration of the call; the answer is
            // copied before it is handed back to the plugin's own `free`, exactly once.
            unsafe {
                let answer = (loaded.verify)(request.as_ptr());
                if answer.is_null() {
                    return None;
                }
                let text = CStr::from_ptr(answer).to_string_lossy().into_owned();
                (loaded.free)(answer);
                Some(text)
            }
        });
        let answer = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => {
                return Err(Rejection::transient(format!(
                    "no answer within {}; the call was abandoned",
                    humantime::format_duration(self.timeout)
                )));
            }
            Ok(Err(e)) => return Err(Rejection::transient(format!("the plugin call failed: {e}"))),
            Ok(Ok(None)) => return Err(Rejection::permanent("the plugin answered nothing")),
            Ok(Ok(Some(text))) => text,
        };
        let verdict: serde_json::Value = serde_json::from_str(&answer).map_err(|_| {
            Rejection::permanent(format!(
                "the plugin's answer is not a verdict: {:.200}",
                answer
            ))
        })?;
        match verdict["accept"].as_bool() {
            Some(true) => Ok(()),
            Some(false) => Err(Rejection::permanent(
                verdict["reason"]
                    .as_str()
                    .unwrap_or("refused without a reason")
                    .chars()
                    .take(1000)
                    .collect::<String>(),
            )),
            None => Err(Rejection::permanent(format!(
                "the plugin's answer is not a verdict: {:.200}",
                answer
            ))),
        }
    }
}
