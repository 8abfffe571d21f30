//! Dynamic-library verifier plugins (`NYMVISOR_PLUGIN_PATHS`), loaded with `libloading` through
//! the versioned C ABI described in `nymvisor-plugin-api` and `plugins/nymvisor_plugin.h`.
//!
//! Isolation: a plugin that is missing or has another ABI version refuses upgrades (retried
//! later, so fixing the file is enough); a call runs on a blocking thread with a timeout, so a
//! plugin that hangs refuses the upgrade instead of stalling nymvisor (its thread is abandoned);
//! an answer that is not a verdict refuses; plugins built with the helper crate turn their panics
//! into refusals. A plugin written by hand in another language must not unwind across the C
//! boundary.

use nymvisor_core::env::Env;
use std::ffi::{CStr, CString, c_char};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nymvisor_core::model::UpgradeInfo;
use nymvisor_core::source::{ChunkSink, SourceError, SourcedUpgrade, UpgradeSource};
use nymvisor_core::verify::{Candidate, Refusal, Verifier};

use nymvisor_sources::fetch::Fetcher;

use crate::error::Error;
use crate::exec::ExecVerifier;

/// The ABI version nymvisor speaks.
pub const ABI_VERSION: u32 = 1;

type AbiFn = unsafe extern "C" fn() -> u32;
type NameFn = unsafe extern "C" fn() -> *const c_char;
type VerifyFn = unsafe extern "C" fn(*const c_char) -> *mut c_char;
type FreeFn = unsafe extern "C" fn(*mut c_char);
type LatestFn = unsafe extern "C" fn(*const c_char) -> *mut c_char;

/// A loaded plugin; the function pointers stay valid as long as `_lib` is alive.
struct Loaded {
    _lib: libloading::Library,
    name: String,
    verify: VerifyFn,
    free: FreeFn,
    /// Present in plugins that are also upstream sources.
    latest: Option<LatestFn>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("name", &self.name).finish()
    }
}

fn load(path: &PathBuf) -> Result<Loaded, Error> {
    if !path.is_file() {
        return Err(Error::Missing { path: path.clone() });
    }
    // SAFETY: loading a library runs its initialisers; the operator configured this file as a
    // nymvisor plugin, which is the trust decision this feature exists for.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| Error::Load {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    // SAFETY: each symbol is looked up with the type the ABI gives it.
    let (abi, name, verify, free) = unsafe {
        let get = |sym: &[u8]| Error::Symbol {
            path: path.clone(),
            symbol: String::from_utf8_lossy(&sym[..sym.len() - 1]).into_owned(),
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
    // SAFETY: looked up with the type the ABI gives it; optional.
    let latest: Option<LatestFn> = unsafe {
        lib.get::<LatestFn>(b"nymvisor_plugin_latest\0")
            .ok()
            .map(|s| *s)
    };
    // SAFETY: ABI functions take no arguments; the name is a static NUL-terminated string.
    let version = unsafe { abi() };
    if version != ABI_VERSION {
        return Err(Error::Abi {
            path: path.clone(),
            found: version,
            expected: ABI_VERSION,
        });
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
        latest,
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
    /// Calls go to a child process of their own (`nymvisor __plugin`).
    isolated: bool,
    /// The environment of that child: the supervisor's resolved one, without the GitHub token.
    env: Env,
}

impl DylibVerifier {
    /// Tries to load the plugin now (a failure is logged and retried at the first verification).
    /// `isolated`: every call runs in a child process of its own (`nymvisor __plugin`), and the
    /// library is never loaded here — not even its initialisers run in this process.
    pub fn new(path: PathBuf, timeout: Duration, isolated: bool, env: Env) -> DylibVerifier {
        if isolated {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            return DylibVerifier {
                label: format!("plugin {file}"),
                path,
                timeout,
                loaded: Mutex::new(None),
                busy: Arc::default(),
                isolated: true,
                env,
            };
        }
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
            isolated: false,
            env,
        }
    }

    fn loaded(&self) -> Result<Arc<Loaded>, Refusal> {
        let mut guard = self
            .loaded
            .lock()
            .map_err(|_| Refusal::transient("plugin state poisoned"))?;
        if let Some(l) = guard.as_ref() {
            return Ok(l.clone());
        }
        let l = Arc::new(load(&self.path).map_err(|e| Refusal::transient(e.to_string()))?);
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
        source: Option<&dyn UpgradeSource>,
    ) -> Result<(), Refusal> {
        self.verify_with_message(c, source).await.map(|_| ())
    }

    /// `{"accept":true}` accepts (its `reason` is the message); `{"accept":false}` refuses, with
    /// `"notNow":true` for later. The check's own failures — no answer, a malformed or NULL
    /// answer, a panic — are "not now": they say nothing about the binary.
    async fn verify_with_message(
        &self,
        c: &Candidate<'_>,
        _source: Option<&dyn UpgradeSource>,
    ) -> Result<Option<String>, Refusal> {
        let request = ExecVerifier::request(c).to_string();
        let answer = if self.isolated {
            call_isolated(&self.path, &request, self.timeout, &self.env).await?
        } else {
            let loaded = self.loaded()?;
            let request = CString::new(request)
                .map_err(|_| Refusal::never("the request contains a NUL byte"))?;
            let verify = loaded.verify;
            call_plugin(loaded, verify, request, self.timeout, self.busy.clone()).await?
        };
        judge(&answer)
    }
}

/// A plugin's answer as a verdict.
pub fn judge(answer: &str) -> Result<Option<String>, Refusal> {
    let malformed = || {
        Refusal::transient(format!(
            "not now: the plugin's answer is not a verdict: {:.200}",
            answer
        ))
    };
    let verdict: serde_json::Value = serde_json::from_str(answer).map_err(|_| malformed())?;
    let reason = verdict["reason"]
        .as_str()
        .map(|r| r.chars().take(1000).collect::<String>());
    match verdict["accept"].as_bool() {
        Some(true) => Ok(reason),
        Some(false) if verdict["notNow"].as_bool() == Some(true) => {
            Err(Refusal::transient(format!(
                "not now: {}",
                reason.as_deref().unwrap_or("without a reason")
            )))
        }
        Some(false) => Err(Refusal::never(
            reason.unwrap_or_else(|| "refused without a reason".to_owned()),
        )),
        None => Err(malformed()),
    }
}

/// The plugin's `verify`, called in a child process (`nymvisor __plugin <library>`): a crash,
/// an abort or a hang of the plugin ends that child, never nymvisor.
async fn call_isolated(
    library: &std::path::Path,
    request: &str,
    timeout: Duration,
    env: &Env,
) -> Result<String, Refusal> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut cmd = tokio::process::Command::new("/proc/self/exe");
    cmd.env_clear()
        .envs(env.iter_os())
        .arg(PLUGIN_SUBCOMMAND)
        .arg(library)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let mut child = nymvisor_core::daemon::children::spawn_tokio(&mut cmd).map_err(|e| {
        Refusal::transient(format!("not now: cannot start the plugin's process: {e}"))
    })?;
    let _owned = nymvisor_core::daemon::children::Owned(child.id());
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(Refusal::transient(
            "not now: the plugin's process has no pipes",
        ));
    };
    let work = async {
        let _ = stdin.write_all(request.as_bytes()).await;
        drop(stdin);
        let mut answer = Vec::new();
        let _ = (&mut stdout).take(1 << 20).read_to_end(&mut answer).await;
        (child.wait().await, answer)
    };
    let (status, answer) = tokio::time::timeout(timeout, work).await.map_err(|_| {
        Refusal::transient(format!(
            "not now: no answer within {}; its process was killed",
            humantime::format_duration(timeout)
        ))
    })?;
    match status {
        Ok(s) if s.success() => Ok(String::from_utf8_lossy(&answer).into_owned()),
        Ok(s) => Err(Refusal::transient(format!(
            "not now: the plugin's process ended ({s}): the plugin crashed or aborted"
        ))),
        Err(e) => Err(Refusal::transient(format!(
            "not now: cannot wait for the plugin's process: {e}"
        ))),
    }
}

/// The hidden subcommand that calls a plugin in a process of its own.
pub const PLUGIN_SUBCOMMAND: &str = "__plugin";

/// `nymvisor __plugin <library>`: loads the plugin, passes it the request read from stdin and
/// returns its answer (printed by the caller). A plugin that crashes takes this process only.
pub fn serve_isolated(library: &std::path::Path, request: &str) -> Result<String, Error> {
    // never unloaded: this process ends right after, and a plugin that misbehaves when it is
    // unloaded must not turn a good answer into a crash
    let loaded: &'static Loaded = Box::leak(Box::new(load(&library.to_path_buf())?));
    let request = CString::new(request).map_err(|_| Error::Load {
        path: library.to_owned(),
        reason: "the request contains a NUL byte".into(),
    })?;
    // SAFETY: as in `call_plugin`: a valid C string for the call; the answer copied, then freed
    // once by the plugin's own `free`.
    let answer = unsafe {
        let answer = (loaded.verify)(request.as_ptr());
        if answer.is_null() {
            return Ok(String::new());
        }
        let text = CStr::from_ptr(answer).to_string_lossy().into_owned();
        (loaded.free)(answer);
        text
    };
    Ok(answer)
}

/// `nymvisor __plugin --describe <library>`: loads the plugin and says what it is —
/// `{"name": …, "source": true|false}` — for the supervisor, which never loads it itself.
pub fn describe_isolated(library: &std::path::Path) -> Result<String, Error> {
    // leaked for the reason `serve_isolated` gives
    let loaded: &'static Loaded = Box::leak(Box::new(load(&library.to_path_buf())?));
    Ok(serde_json::json!({ "name": loaded.name, "source": loaded.latest.is_some() }).to_string())
}

/// Checks, at start, that a plugin named `name` among `paths` is an upstream source — each
/// library loaded in a child process of its own (`nymvisor __plugin --describe`), never in the
/// supervisor. The same answer `PluginSource::find` gives in the network helper, with its errors.
pub async fn check_source_isolated(
    paths: &[PathBuf],
    name: &str,
    timeout: Duration,
    env: &Env,
) -> Result<(), Error> {
    let mut seen = Vec::new();
    for path in paths {
        match describe_in_child(path, timeout, env).await {
            Ok((n, source)) if n == name => {
                if source {
                    return Ok(());
                }
                return Err(Error::NotASource {
                    name: name.to_owned(),
                    path: path.clone(),
                });
            }
            Ok((n, _)) => seen.push(n),
            Err(e) => seen.push(format!("({e})")),
        }
    }
    Err(no_such_plugin(name, &seen))
}

/// No plugin among those `seen` (their names, or why they could not be read) is `name`.
fn no_such_plugin(name: &str, seen: &[String]) -> Error {
    Error::NoSuchPlugin {
        name: name.to_owned(),
        found: if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.join(", ")
        },
    }
}

/// Most of a `--describe` answer (or its error) read.
const MAX_DESCRIPTION: u64 = 64 * 1024;

/// One `nymvisor __plugin --describe <library>`: the plugin's name and whether it is a source.
async fn describe_in_child(
    path: &std::path::Path,
    timeout: Duration,
    env: &Env,
) -> Result<(String, bool), Error> {
    let failed = |reason: String| Error::Load {
        path: path.to_owned(),
        reason,
    };
    let mut cmd = tokio::process::Command::new("/proc/self/exe");
    cmd.env_clear()
        .envs(env.iter_os())
        .arg(PLUGIN_SUBCOMMAND)
        .arg("--describe")
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = nymvisor_core::daemon::children::spawn_tokio(&mut cmd)
        .map_err(|e| failed(format!("cannot start the plugin's process: {e}")))?;
    let _owned = nymvisor_core::daemon::children::Owned(child.id());
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(failed("the plugin's process has no pipes".into()));
    };
    // a description is a name and a flag: what a plugin prints beyond the cap is not read
    use tokio::io::AsyncReadExt;
    let talk = async {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (mut stdout, mut stderr) = (stdout.take(MAX_DESCRIPTION), stderr.take(MAX_DESCRIPTION));
        let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        let status = child.wait().await;
        (status, out, err)
    };
    let (status, stdout, stderr) = tokio::time::timeout(timeout, talk).await.map_err(|_| {
        failed(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        ))
    })?;
    let status =
        status.map_err(|e| failed(format!("cannot wait for the plugin's process: {e}")))?;
    let out = std::process::Output {
        status,
        stdout,
        stderr,
    };
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.trim().trim_start_matches("nymvisor: error: ");
        return Err(failed(if why.is_empty() {
            format!(
                "the plugin's process ended ({}): the plugin crashed or aborted",
                out.status
            )
        } else {
            why.chars().take(500).collect()
        }));
    }
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| failed(format!("the plugin's process answered no description: {e}")))?;
    let name = answer["name"].as_str().unwrap_or_default().to_owned();
    Ok((name, answer["source"].as_bool() == Some(true)))
}

/// Calls `f` (one of the plugin's `char *f(const char *)` functions) on a blocking thread with a
/// timeout, copying and freeing its answer.
async fn call_plugin(
    loaded: Arc<Loaded>,
    f: VerifyFn,
    request: CString,
    timeout: Duration,
    busy: Arc<std::sync::atomic::AtomicBool>,
) -> Result<String, Refusal> {
    use std::sync::atomic::Ordering;
    if busy.swap(true, Ordering::SeqCst) {
        return Err(Refusal::transient("its previous call has not returned yet"));
    }
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
            let answer = f(request.as_ptr());
            if answer.is_null() {
                return None;
            }
            let text = CStr::from_ptr(answer).to_string_lossy().into_owned();
            (loaded.free)(answer);
            Some(text)
        }
    });
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(Refusal::transient(format!(
            "no answer within {}; the call was abandoned",
            humantime::format_duration(timeout)
        ))),
        Ok(Err(e)) => Err(Refusal::transient(format!("the plugin call failed: {e}"))),
        Ok(Ok(None)) => Err(Refusal::transient("not now: the plugin answered nothing")),
        Ok(Ok(Some(text))) => Ok(text),
    }
}

/// An upstream source provided by a plugin (`NYMVISOR_UPSTREAM_SOURCE=plugin:<name>`): the
/// plugin's `nymvisor_plugin_latest` gives the upgrade-info document; binaries are fetched from
/// the document's URLs (http(s) with nymvisor's limits, or `file://` inside
/// `NYMVISOR_LOCAL_MIRROR_DIRECTORY`).
#[derive(Debug)]
pub struct PluginSource {
    loaded: Arc<Loaded>,
    latest: LatestFn,
    daemon: String,
    timeout: Duration,
    fetcher: Fetcher,
    busy: Arc<std::sync::atomic::AtomicBool>,
}

impl PluginSource {
    /// The plugin named `name` among `paths` that exports `nymvisor_plugin_latest`. Its
    /// `file://` URLs are read inside `file_root` only (none: refused).
    pub fn find(
        paths: &[PathBuf],
        name: &str,
        daemon: &str,
        timeout: Duration,
        limits: nymvisor_sources::Limits,
        file_root: Option<&std::path::Path>,
    ) -> Result<PluginSource, Error> {
        let mut seen = Vec::new();
        for path in paths {
            match load(path) {
                Ok(l) if l.name == name => {
                    let Some(latest) = l.latest else {
                        return Err(Error::NotASource {
                            name: name.to_owned(),
                            path: path.clone(),
                        });
                    };
                    let mut fetcher = Fetcher::new(limits)?;
                    if let Some(root) = file_root {
                        fetcher = fetcher.with_file_root(root);
                    }
                    return Ok(PluginSource {
                        loaded: Arc::new(l),
                        latest,
                        daemon: daemon.to_owned(),
                        timeout,
                        fetcher,
                        busy: Arc::default(),
                    });
                }
                Ok(l) => seen.push(l.name),
                Err(e) => seen.push(format!("({e})")),
            }
        }
        Err(no_such_plugin(name, &seen))
    }
}

#[async_trait::async_trait]
impl UpgradeSource for PluginSource {
    fn describe(&self) -> String {
        format!("the source plugin `{}`", self.loaded.name)
    }

    async fn latest(&self) -> Result<Option<SourcedUpgrade>, SourceError> {
        let request = CString::new(
            serde_json::json!({ "abiVersion": ABI_VERSION, "daemon": self.daemon }).to_string(),
        )
        .map_err(|_| SourceError::new("the request contains a NUL byte"))?;
        let answer = call_plugin(
            self.loaded.clone(),
            self.latest,
            request,
            self.timeout,
            self.busy.clone(),
        )
        .await
        .map_err(|r| {
            SourceError::new(format!(
                "the source plugin `{}`: {}",
                self.loaded.name, r.reason
            ))
        })?;
        if answer.trim() == "null" {
            return Ok(None);
        }
        let info: UpgradeInfo = serde_json::from_str(&answer).map_err(|e| {
            SourceError::new(format!(
                "the source plugin `{}` answered no upgrade-info document: {e}",
                self.loaded.name
            ))
        })?;
        Ok(Some(SourcedUpgrade {
            info,
            document: answer.into_bytes(),
            document_url: format!("plugin:{}", self.loaded.name),
        }))
    }

    async fn download(
        &self,
        url: &str,
        max_bytes: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        // one path from URL to bytes: http(s) with nymvisor's limits, file:// inside the mirror
        let url = self.fetcher.resolve(url, None)?;
        Ok(self.fetcher.get(&url, max_bytes, sink).await?)
    }
}
