//! Test harness shared by the end-to-end tests and the demo: temp homes, the real `nymvisor`
//! binary, stamped copies of the fake daemon, and wait-for-condition helpers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod etcd;
pub mod feed;
pub mod github;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const MARKER: &[u8] = b"@@NYMVISOR-FAKE-DAEMON-META@@";
const META_LEN: usize = 512;

/// A binary built by this workspace, next to the test executable's `deps/` directory.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("deps dir");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("target dir")
    } else {
        dir
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

/// The real `nymvisor` binary.
pub fn nymvisor_bin() -> PathBuf {
    workspace_bin("nymvisor")
}

/// The unstamped fake daemon.
pub fn fake_daemon_bin() -> PathBuf {
    workspace_bin("fake-nym-daemon")
}

/// Writes a copy of the fake daemon to `dest` that reports `name` and `version`; `extra` is
/// more `key=value` metadata (`mode=crash`, `nobanner=reject`, `buildinfo=hang`).
///
/// The file is written by a child process (`stamp-fake-daemon`), never by the test process
/// itself: a test process runs many tests on many threads, and a thread that forks while another
/// has the new binary open for writing hands that write descriptor to its child until the
/// child's `exec`; executing the binary in that window fails with ETXTBSY ("Text file busy").
pub fn stamp_fake_daemon(dest: &Path, name: &str, version: &str, extra: &[&str]) -> PathBuf {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let status = Command::new(workspace_bin("stamp-fake-daemon"))
        .arg(dest)
        .arg(name)
        .arg(version)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "stamp-fake-daemon failed for {}",
        dest.display()
    );
    dest.to_owned()
}

/// What `stamp-fake-daemon` runs: the stamping itself, in the calling process.
pub fn stamp_in_process(dest: &Path, name: &str, version: &str, extra: &[&str]) -> PathBuf {
    let mut bytes = std::fs::read(fake_daemon_bin()).unwrap();
    let at = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .expect("metadata marker in the fake daemon");
    let mut meta = format!("name={name};version={version};");
    for kv in extra {
        meta.push_str(kv);
        meta.push(';');
    }
    let start = at + MARKER.len();
    assert!(meta.len() < META_LEN - MARKER.len());
    bytes[start..start + meta.len()].copy_from_slice(meta.as_bytes());
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(dest, bytes).unwrap();
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755)).unwrap();
    dest.to_owned()
}

/// Variables of the tools that run the tests (coverage, backtraces), kept when a test clears a
/// child's environment: `cargo llvm-cov` only sees the binaries that got `LLVM_PROFILE_FILE`.
pub const TOOLING_ENV: &[&str] = &[
    "LLVM_PROFILE_FILE",
    "CARGO_LLVM_COV",
    "CARGO_LLVM_COV_SHOW_ENV",
    "CARGO_LLVM_COV_TARGET_DIR",
    "RUST_BACKTRACE",
];

/// Copies the [`TOOLING_ENV`] variables that are set into `cmd`.
pub fn pass_tooling_env(cmd: &mut Command) {
    for var in TOOLING_ENV {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
}

/// Whether a test's prerequisite (a tool, a kernel feature, a permission) is there. Without it
/// the test is skipped with a line saying so — except under CI (`CI` set), where `.ci/run`
/// installs every prerequisite and a missing one must fail the test, not pass it silently.
#[track_caller]
pub fn prerequisite(present: bool, what: &str) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "missing prerequisite under CI: {what} (.ci/run must provide it)"
    );
    eprintln!("SKIPPED: {what}");
    false
}

/// The uid and gid of `nobody`: the service user of tests that act as two users.
pub const NOBODY: u32 = 65534;

/// Whether this test can act as two users (root and [`NOBODY`]), as a [`prerequisite`].
#[track_caller]
pub fn two_users() -> bool {
    prerequisite(
        nix::unistd::geteuid().is_root(),
        "acting as two users needs root (CI runs as root)",
    )
}

/// A private world for one test: `NYM_HOME_DIR`, a daemon home, a place for binaries.
#[derive(Debug)]
pub struct TestHome {
    pub dir: tempfile::TempDir,
}

impl Default for TestHome {
    fn default() -> Self {
        Self::new()
    }
}

impl TestHome {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("nym-home")).unwrap();
        std::fs::create_dir_all(dir.path().join("daemon-home")).unwrap();
        std::fs::create_dir_all(dir.path().join("bins")).unwrap();
        TestHome { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `NYM_HOME_DIR`.
    pub fn nym_home(&self) -> PathBuf {
        self.path().join("nym-home")
    }

    pub fn daemon_home(&self) -> PathBuf {
        self.path().join("daemon-home")
    }

    /// `<NYM_HOME_DIR>/.nym/nymvisors`.
    pub fn nymvisors(&self) -> PathBuf {
        self.nym_home().join(".nym").join("nymvisors")
    }

    /// The default upgrade data directory of `daemon`.
    pub fn data_dir(&self, daemon: &str) -> PathBuf {
        self.nymvisors().join("data").join(daemon)
    }

    pub fn config_path(&self, id: &str) -> PathBuf {
        self.nymvisors()
            .join("instances")
            .join(id)
            .join("config")
            .join("config.toml")
    }

    /// A stamped fake daemon under `bins/<file>`.
    pub fn daemon_bin(&self, file: &str, name: &str, version: &str, extra: &[&str]) -> PathBuf {
        stamp_fake_daemon(&self.path().join("bins").join(file), name, version, extra)
    }

    /// `nymvisor` with a clean environment pointing at this home.
    pub fn nymvisor(&self) -> Command {
        let mut cmd = Command::new(nymvisor_bin());
        cmd.env_clear();
        pass_tooling_env(&mut cmd);
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NYM_HOME_DIR", self.nym_home())
            .env("HOME", self.path())
            .env("RUST_LOG", "warn")
            // tests never reach the internet: sources are enabled explicitly where tested
            .env("NYMVISOR_UPSTREAM_SOURCE", "none")
            .current_dir(self.path());
        cmd
    }

    /// Runs `nymvisor args…` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.nymvisor().args(args).output().unwrap()
    }

    /// `nymvisor init` of a fake `nym-node` at `version` with default settings; asserts success.
    pub fn init_default(&self, version: &str) -> PathBuf {
        let bin = self.daemon_bin(&format!("nym-node-{version}"), "nym-node", version, &[]);
        self.init_with(&bin);
        bin
    }

    /// `nymvisor run` with [`FAST`] timings, watching `server`'s HTTP feed every second, with
    /// `extra` settings last.
    pub fn spawn_run_on_feed(
        &self,
        server: &feed::FeedServer,
        extra: &[(&str, &str)],
    ) -> RunHandle {
        let base = format!("{}/", server.base());
        let mut envs: Vec<(&str, &str)> = FAST.to_vec();
        envs.extend([
            ("NYMVISOR_UPSTREAM_SOURCE", "http"),
            ("NYMVISOR_UPSTREAM_BASE_UPGRADE_URL", base.as_str()),
            ("NYMVISOR_UPSTREAM_POLLING_RATE", "1s"),
        ]);
        envs.extend_from_slice(extra);
        self.spawn_run(&envs, &[])
    }

    /// `nymvisor init <bin> --daemon-home <daemon home>`, which must succeed.
    pub fn init_with(&self, bin: &Path) {
        let out = self.run(&[
            "init",
            bin.to_str().unwrap(),
            "--daemon-home",
            self.daemon_home().to_str().unwrap(),
        ]);
        assert_success(&out);
    }

    /// A snapshot of every file under the home (path → content hash), to prove nothing changed.
    pub fn snapshot(&self) -> Vec<(PathBuf, String)> {
        let mut files = Vec::new();
        snapshot_into(self.path(), &mut files);
        files.sort();
        files
    }
}

fn snapshot_into(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ft = entry.file_type().unwrap();
        if ft.is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            out.push((path, format!("-> {}", target.display())));
        } else if ft.is_dir() {
            out.push((path.clone(), "<dir>".to_owned()));
            snapshot_into(&path, out);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&bytes, &mut h);
            let hash = std::hash::Hasher::finish(&h);
            out.push((
                path.clone(),
                format!("{} bytes, hash {hash:016x}", bytes.len()),
            ));
        }
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "expected success, got {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Asserts failure with a one-line cause on stderr containing `needle`.
#[track_caller]
pub fn assert_failure(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected failure, got success\nstdout:\n{}\nstderr:\n{err}",
        stdout(out)
    );
    assert!(
        err.contains(needle),
        "stderr does not mention {needle:?}:\n{err}"
    );
    let cause: Vec<_> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(cause.len(), 1, "expected one error line:\n{err}");
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The directory of the 0.1.41 fixtures shipped with the tests.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("nymvisor-0.1.41")
}

/// A `nymvisor run` started in the background by a test. Killed (with its daemons) on drop.
#[derive(Debug)]
pub struct RunHandle {
    child: std::process::Child,
    pub daemon_log: PathBuf,
    pub stderr_path: PathBuf,
    status: Option<std::process::ExitStatus>,
}

/// How long tests wait for something that should happen in well under a second.
pub const PATIENCE: Duration = Duration::from_secs(20);

impl TestHome {
    /// Runs `nymvisor run` with extra environment through one upgrade to a new fake daemon
    /// (1.2.0, `v1.2.0`, added with `--now`), stops it and returns its stderr.
    pub fn run_one_upgrade(&self, envs: &[(&str, &str)]) -> String {
        let mut nv = self.spawn_run(envs, &[]);
        nv.wait_start(1);
        let new = self.daemon_bin("new", "nym-node", "1.2.0", &[]);
        self.add_upgrade(&new, "v1.2.0", &["--now"]);
        nv.wait_stderr("upgrade applied");
        nv.stop();
        nv.stderr()
    }

    /// Starts `nymvisor run <args>` with extra environment; the fake daemon logs to
    /// `daemon-<n>.log` and nymvisor's stderr goes to `nymvisor-<n>.log`.
    pub fn spawn_run(&self, envs: &[(&str, &str)], args: &[&str]) -> RunHandle {
        self.spawn_run_with_args(envs, &[], args)
    }

    /// Like [`TestHome::spawn_run`], with `global` arguments before `run`.
    pub fn spawn_run_with_args(
        &self,
        envs: &[(&str, &str)],
        global: &[&str],
        args: &[&str],
    ) -> RunHandle {
        self.spawn_run_cmd(envs, global, args, |_| {})
    }

    /// Like [`TestHome::spawn_run_with_args`]; `customize` changes the command last (other
    /// stdio, environment values that are not UTF-8, a wrapper program…).
    pub fn spawn_run_cmd(
        &self,
        envs: &[(&str, &str)],
        global: &[&str],
        args: &[&str],
        customize: impl FnOnce(&mut Command),
    ) -> RunHandle {
        let n = std::fs::read_dir(self.path()).unwrap().count();
        let daemon_log = self.path().join(format!("daemon-{n}.log"));
        let stderr_path = self.path().join(format!("nymvisor-{n}.log"));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = self.nymvisor();
        cmd.env("RUST_LOG", "info")
            .env("FAKE_DAEMON_LOG", &daemon_log)
            .env("FAKE_DAEMON_WRITE_HOME", self.daemon_home())
            .args(global)
            .arg("run")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        customize(&mut cmd);
        RunHandle {
            child: cmd.spawn().unwrap(),
            daemon_log,
            stderr_path,
            status: None,
        }
    }
}

/// A start of the fake daemon, from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub pid: i32,
    pub pgid: i32,
    pub version: String,
    pub args: String,
}

impl RunHandle {
    /// nymvisor's stderr, when the command was given a pipe for it.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Lines the fake daemon(s) logged so far.
    pub fn events(&self) -> Vec<String> {
        std::fs::read_to_string(&self.daemon_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn starts(&self) -> Vec<Start> {
        self.events()
            .iter()
            .filter_map(|l| {
                let rest = l.strip_prefix("start ")?;
                let field = |k: &str| {
                    rest.split(' ')
                        .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                        .map(str::to_owned)
                };
                Some(Start {
                    pid: field("pid")?.parse().ok()?,
                    pgid: field("pgid")?.parse().ok()?,
                    version: field("version")?,
                    args: rest.split_once("args=")?.1.to_owned(),
                })
            })
            .collect()
    }

    /// nymvisor's own log output so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits until the daemon log satisfies `cond`; panics with both logs otherwise.
    #[track_caller]
    pub fn wait_events(&self, what: &str, mut cond: impl FnMut(&[String]) -> bool) {
        if !wait_for(PATIENCE, || cond(&self.events())) {
            panic!(
                "timed out waiting for {what}\ndaemon log:\n{}\nnymvisor log:\n{}",
                self.events().join("\n"),
                self.stderr()
            );
        }
    }

    /// Waits for the `n`-th start of the daemon (1-based) and returns it.
    #[track_caller]
    pub fn wait_start(&self, n: usize) -> Start {
        self.wait_events(&format!("daemon start #{n}"), |_| self.starts().len() >= n);
        self.starts()[n - 1].clone()
    }

    /// Waits until nymvisor's log contains `needle`.
    #[track_caller]
    pub fn wait_stderr(&self, needle: &str) {
        if !wait_for(PATIENCE, || self.stderr().contains(needle)) {
            panic!(
                "timed out waiting for {needle:?} in nymvisor's log:\n{}",
                self.stderr()
            );
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for nymvisor to exit.
    #[track_caller]
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                return status;
            }
            if Instant::now() > deadline {
                panic!("nymvisor did not exit; its log:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether nymvisor is still running.
    pub fn running(&mut self) -> bool {
        self.status.is_none() && self.child.try_wait().unwrap().is_none()
    }
}

/// Whether a process with this pid exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Pids of live fake daemons (and grandchildren) logged in `log`.
pub fn logged_pids(events: &[String]) -> Vec<i32> {
    events
        .iter()
        .filter_map(|l| {
            let pid = l.split(' ').find_map(|kv| kv.strip_prefix("pid="))?;
            pid.parse().ok()
        })
        .collect()
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // kill whatever the fake daemons left, but only processes that are still fake daemons
        for pid in logged_pids(&self.events()) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("nym") {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Kills a child process when dropped (so a failing test leaves nothing running).
#[derive(Debug)]
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Fast timings for tests, as environment overrides for `run`.
pub const FAST: &[(&str, &str)] = &[
    ("DAEMON_FAILURE_RESTART_DELAY", "100ms"),
    ("DAEMON_SHUTDOWN_GRACE_PERIOD", "5s"),
    ("DAEMON_STARTUP_PERIOD_DURATION", "1s"),
];

impl TestHome {
    /// `nymvisor add-upgrade BIN --upgrade-name NAME EXTRA…`, asserting success.
    #[track_caller]
    pub fn add_upgrade(&self, bin: &Path, name: &str, extra: &[&str]) {
        let mut args = vec!["add-upgrade", bin.to_str().unwrap(), "--upgrade-name", name];
        args.extend_from_slice(extra);
        assert_success(&self.run(&args));
    }
}

impl RunHandle {
    /// Stops nymvisor with SIGTERM and asserts it exits cleanly.
    #[track_caller]
    pub fn stop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.wait_exit();
        assert!(
            status.success(),
            "nymvisor exited with {status}; its log:\n{}",
            self.stderr()
        );
    }
}

/// A plugin `.so` built by this workspace (`cargo test --workspace` leaves them in `deps/`).
pub fn plugin_lib(crate_name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    let file = format!("lib{}.so", crate_name.replace('-', "_"));
    let candidates = [
        deps.join(&file),
        deps.parent().map(|p| p.join(&file)).unwrap_or_default(),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{file} is missing: run the tests with `cargo test --workspace`, which builds it"
            )
        })
}

/// Live or zombie children of `parent` whose command name (`/proc/<pid>/comm`) is `comm`.
pub fn children_named(parent: i32, comm: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
            ppid == Some(parent)
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

/// Writes an executable shell script that stands for a daemon: `build-info` goes to `fake`
/// (a stamped fake daemon), anything else runs `body`.
pub fn script_daemon(dest: &Path, fake: &Path, body: &str) -> PathBuf {
    let text = format!(
        "#!/bin/sh\ncase \"$*\" in *build-info*) exec \"{}\" \"$@\";; esac\n{body}\n",
        fake.display()
    );
    write_executable(dest, text.as_bytes());
    dest.to_owned()
}

/// Writes an executable file through a child process (see [`stamp_fake_daemon`] for why).
pub fn write_executable(dest: &Path, bytes: &[u8]) {
    let staged = dest.with_extension("staged");
    std::fs::write(&staged, bytes).unwrap();
    let status = Command::new("install")
        .args(["-m", "0755"])
        .arg(&staged)
        .arg(dest)
        .status()
        .unwrap();
    assert!(status.success(), "install {}", dest.display());
    std::fs::remove_file(&staged).unwrap();
}

/// Runs `cmd` to its end, or kills it after [`PATIENCE`] and panics (for commands that must
/// never hang).
#[track_caller]
pub fn output_within_patience(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if !wait_for(PATIENCE, || child.try_wait().unwrap().is_some()) {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "still running after {PATIENCE:?}\nstdout:\n{}\nstderr:\n{}",
            stdout(&out),
            stderr(&out)
        );
    }
    child.wait_with_output().unwrap()
}

/// `cmd` (a `nymvisor` command line from [`TestHome::spawn_run_cmd`]) run through `wrapper`
/// (e.g. `unshare …`): the wrapper's arguments, then `nymvisor` and `cmd`'s arguments, with
/// `cmd`'s environment and directory; stdin and stdout are null, stderr goes to `stderr`.
pub fn wrapped_nymvisor(
    cmd: &Command,
    wrapper: &str,
    wrapper_args: &[&std::ffi::OsStr],
    stderr: std::fs::File,
) -> Command {
    let mut wrapped = Command::new(wrapper);
    wrapped
        .args(wrapper_args)
        .arg(nymvisor_bin())
        .args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr);
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}
