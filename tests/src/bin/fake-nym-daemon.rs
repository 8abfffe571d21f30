//! A stand-in for a Nym binary, used by the end-to-end tests and the demo.
//!
//! * `[--no-banner] build-info --output=json|text` prints build information like the real
//!   daemons. Name and version come from a metadata block stamped into a copy of this binary by
//!   `nymvisor_tests::stamp_fake_daemon` (so copies of different "versions" exist as files, as
//!   real releases do); the unstamped binary reads `FAKE_DAEMON_NAME` / `FAKE_DAEMON_VERSION`.
//! * Anything else runs as a daemon that logs what happens to `$FAKE_DAEMON_LOG`: its start
//!   (pid, process group, version, arguments), every signal, and its exit. Behaviour knobs:
//!   - `FAKE_DAEMON_IGNORE=TERM,INT,…`  signals it ignores (logged, not acted upon);
//!   - `FAKE_DAEMON_EXIT_AFTER_MS=N` with `FAKE_DAEMON_EXIT_CODE=C`  exits by itself;
//!   - `FAKE_DAEMON_GRANDCHILD=1`  forks a grandchild that ignores TERM/INT and lives on;
//!   - `FAKE_DAEMON_ESCAPE=1`  starts a helper in a session of its own (`setsid`, so it leaves
//!     the process group) that logs `escaper pid=N`, its signals, and exits on TERM/INT;
//!   - `FAKE_DAEMON_DAEMONIZE=1`  starts such a helper, logs `daemonized child=N` and exits 0
//!     (a daemon that forks into the background);
//!   - stamped `mode=crash`  exits 3 right after start (a broken release);
//!   - stamped `nobanner=reject`  refuses `--no-banner` (an old binary, to test the fallback);
//!   - stamped `buildinfo=hang`  never answers `build-info` (to test the probe timeout).
//!   - `FAKE_DAEMON_TIMELOG=FILE`  the same lines, prefixed with nanoseconds since the epoch
//!     (for the benchmark);
//!   - `FAKE_DAEMON_WRITE_HOME=DIR`  writes `DIR/data/version.txt` with its version, and an empty
//!     `DIR/data/touched-<version>`, at start.
//!   - `FAKE_DAEMON_CHURN=DIR`  a database that keeps changing: rewrites one of
//!     `DIR/churn-{0,1,2}.db` (1 MiB each, in place, same size) every 100 ms while it runs, and
//!     all three when it stops (a node that writes its data at shutdown), before logging its exit;
//!   - `FAKE_DAEMON_ON_STOP=COMMAND`  runs `sh -c COMMAND` when told to stop, before exiting
//!     (a daemon that changes its files at shutdown).
//! * `init --id ID` creates `$HOME/.nym/nym-nodes/<ID>/config/config.toml` and exits, as
//!   `nym-node init` would (the container test starts from an empty volume).

use std::io::Write;
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};

/// Stamped by the tests: the marker, then `key=value;` pairs, then NUL padding.
#[used]
static META: [u8; 512] = {
    let mut buf = [0u8; 512];
    let marker = b"@@NYMVISOR-FAKE-DAEMON-META@@";
    let mut i = 0;
    while i < marker.len() {
        buf[i] = marker[i];
        i += 1;
    }
    buf
};
const MARKER_LEN: usize = 29;

fn meta(key: &str) -> Option<String> {
    // SAFETY: META is a plain byte array that lives for the whole program. The read is volatile so
    // the compiler cannot fold in the unstamped initial value: the bytes are patched in the file.
    let raw: [u8; 512] = unsafe { std::ptr::read_volatile(&META) };
    let text = String::from_utf8_lossy(&raw[MARKER_LEN..]);
    let text = text.trim_end_matches('\0');
    text.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

fn name() -> String {
    meta("name")
        .or_else(|| std::env::var("FAKE_DAEMON_NAME").ok())
        .unwrap_or_else(|| "nym-node".to_owned())
}

fn version() -> String {
    meta("version")
        .or_else(|| std::env::var("FAKE_DAEMON_VERSION").ok())
        .unwrap_or_else(|| "1.1.0".to_owned())
}

fn log(line: &str) {
    if let Ok(path) = std::env::var("FAKE_DAEMON_TIMELOG") {
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        append(&path, &format!("{ns} {line}"));
    }
    if let Ok(path) = std::env::var("FAKE_DAEMON_LOG") {
        append(&path, line);
    }
}

fn append(path: &str, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // one write per line, so lines from several processes never interleave
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut rest: &[String] = &args;
    let mut no_banner = false;
    if rest.first().map(String::as_str) == Some("--no-banner") {
        no_banner = true;
        rest = &rest[1..];
    }
    match rest.first().map(String::as_str) {
        Some("build-info") => build_info(no_banner, &rest[1..]),
        Some("init") => init(&rest[1..]),
        Some("__grandchild") => grandchild(),
        Some("__escaper") => escaper(),
        _ => daemon(&args),
    }
}

/// `init --id ID`: what `nym-node init` leaves behind, its home
/// `$HOME/.nym/nym-nodes/<ID>/` with a config file; then it exits.
fn init(args: &[String]) {
    let id = args
        .windows(2)
        .find(|w| w[0] == "--id")
        .map(|w| w[1].clone())
        .unwrap_or_else(|| "default-nym-node".to_owned());
    let base = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    let home = std::path::Path::new(&base)
        .join(".nym")
        .join("nym-nodes")
        .join(&id);
    let made = std::fs::create_dir_all(home.join("config"))
        .and_then(|()| std::fs::write(home.join("config/config.toml"), format!("id = {id:?}\n")));
    match made {
        Ok(()) => println!("initialised node {id} in {}", home.display()),
        Err(e) => {
            eprintln!("cannot initialise {}: {e}", home.display());
            std::process::exit(1);
        }
    }
}

fn build_info(no_banner: bool, args: &[String]) {
    if no_banner && meta("nobanner").as_deref() == Some("reject") {
        eprintln!("error: unexpected argument '--no-banner' found");
        std::process::exit(2);
    }
    if meta("buildinfo").as_deref() == Some("hang") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let json = args.iter().any(|a| a == "--output=json" || a == "json");
    let info = serde_json::json!({
        "binary_name": name(),
        "build_timestamp": "2026-05-01T10:00:00.000000000Z",
        "build_version": version(),
        "commit_sha": "0123456789abcdef0123456789abcdef01234567",
        "commit_timestamp": "2026-04-30T09:00:00.000000000+02:00",
        "commit_branch": "master",
        "rustc_version": "1.87.0",
        "rustc_channel": "stable",
        "cargo_profile": "release",
        "cargo_triple": "x86_64-unknown-linux-gnu",
    });
    if !no_banner {
        println!(
            "\n      _ __  _   _ _ __ ___\n     | '_ \\| | | | '_ ` _ \\\n     | | | | |_| | | | | | |\n     |_| |_|\\__, |_| |_| |_|\n            |___/\n"
        );
    }
    if json {
        println!("{info}");
    } else if let Some(map) = info.as_object() {
        for (k, v) in map {
            println!("{k}: {}", v.as_str().unwrap_or_default());
        }
    }
}

fn signal_from_name(name: &str) -> Option<Signal> {
    let name = name.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name).to_owned();
    format!("SIG{name}").parse().ok()
}

fn daemon(args: &[String]) {
    let pid = std::process::id();
    let pgid = nix::unistd::getpgrp();
    // Handle signals synchronously: block them here, before any thread exists, then sigwait.
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    let ignored: Vec<Signal> = std::env::var("FAKE_DAEMON_IGNORE")
        .unwrap_or_default()
        .split(',')
        .filter_map(signal_from_name)
        .collect();

    log(&format!(
        "start pid={pid} pgid={pgid} version={} args={}",
        version(),
        serde_json::to_string(args).unwrap_or_default()
    ));
    if let Ok(home) = std::env::var("FAKE_DAEMON_WRITE_HOME") {
        let dir = std::path::Path::new(&home).join("data");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("version.txt"), version());
        let _ = std::fs::write(dir.join(format!("touched-{}", version())), "");
    }
    if meta("mode").as_deref() == Some("crash") {
        log(&format!("exit pid={pid} code=3 reason=crash-mode"));
        std::process::exit(3);
    }
    if std::env::var("FAKE_DAEMON_GRANDCHILD").as_deref() == Ok("1") {
        spawn_grandchild();
    }
    if std::env::var("FAKE_DAEMON_ESCAPE").as_deref() == Ok("1") {
        spawn_escaper();
    }
    if std::env::var("FAKE_DAEMON_DAEMONIZE").as_deref() == Ok("1") {
        if let Some(child) = spawn_escaper() {
            log(&format!("daemonized child={child}"));
        }
        log(&format!("exit pid={pid} code=0 reason=daemonized"));
        std::process::exit(0);
    }
    if let Ok(ms) = std::env::var("FAKE_DAEMON_EXIT_AFTER_MS")
        && let Ok(ms) = ms.parse::<u64>()
    {
        let code: i32 = std::env::var("FAKE_DAEMON_EXIT_CODE")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            log(&format!("exit pid={pid} code={code} reason=timer"));
            std::process::exit(code);
        });
    }
    let churn = std::env::var("FAKE_DAEMON_CHURN").ok().map(Churn::start);
    loop {
        let Ok(sig) = set.wait() else { continue };
        if ignored.contains(&sig) {
            log(&format!("signal pid={pid} {sig} ignored"));
            continue;
        }
        log(&format!("signal pid={pid} {sig}"));
        if matches!(sig, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) {
            if let Some(churn) = &churn {
                churn.stop();
            }
            if let Ok(command) = std::env::var("FAKE_DAEMON_ON_STOP") {
                let status = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(&command)
                    .status();
                log(&format!("on-stop pid={pid} {status:?}"));
            }
            log(&format!("exit pid={pid} code=0 reason={sig}"));
            std::process::exit(0);
        }
    }
}

fn spawn_grandchild() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let child = std::process::Command::new(exe)
        .arg("__grandchild")
        .stdin(std::process::Stdio::null())
        .spawn();
    if let Ok(child) = child {
        log(&format!("grandchild pid={}", child.id()));
    }
}

/// Starts `__escaper`, returns its pid once it has logged itself.
fn spawn_escaper() -> Option<u32> {
    let exe = std::env::current_exe().ok()?;
    let mut child = std::process::Command::new(exe)
        .arg("__escaper")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    // it says when it has left the group, so the caller's log order is meaningful
    let mut ready = [0u8; 1];
    let _ = std::io::Read::read(child.stdout.as_mut()?, &mut ready);
    Some(child.id())
}

fn escaper() {
    let pid = std::process::id();
    let _ = nix::unistd::setsid();
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    log(&format!("escaper pid={pid}"));
    let _ = std::io::stdout().write_all(b"r");
    let _ = std::io::stdout().flush();
    loop {
        let Ok(sig) = set.wait() else { continue };
        log(&format!("signal pid={pid} {sig}"));
        if sig != Signal::SIGHUP {
            log(&format!("exit pid={pid} code=0 reason={sig}"));
            std::process::exit(0);
        }
    }
}

fn grandchild() {
    // Only SIGKILL ends it: it stands for a helper process a daemon forgot to stop.
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// `FAKE_DAEMON_CHURN`: files rewritten in place while the daemon runs and when it stops.
struct Churn {
    dir: std::path::PathBuf,
    round: std::sync::Arc<std::sync::Mutex<u64>>,
}

impl Churn {
    const FILES: u64 = 3;
    const SIZE: usize = 1 << 20;

    fn start(dir: String) -> Churn {
        let churn = Churn {
            dir: dir.into(),
            round: Default::default(),
        };
        let _ = std::fs::create_dir_all(&churn.dir);
        for _ in 0..Self::FILES {
            churn.write_next();
        }
        let (dir, round) = (churn.dir.clone(), churn.round.clone());
        std::thread::spawn(move || {
            let me = Churn { dir, round };
            loop {
                std::thread::sleep(Duration::from_millis(100));
                me.write_next();
            }
        });
        churn
    }

    /// Rewrites the next file in place, with content that names the round.
    fn write_next(&self) {
        let Ok(mut round) = self.round.lock() else {
            return;
        };
        *round += 1;
        let path = self.dir.join(format!("churn-{}.db", *round % Self::FILES));
        let line = format!("pid={} round={}\n", std::process::id(), *round);
        let mut data = line.repeat(Self::SIZE / line.len() + 1).into_bytes();
        data.truncate(Self::SIZE);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .and_then(|mut f| f.write_all(&data));
        if let Err(e) = written {
            log(&format!("churn failed on {}: {e}", path.display()));
        }
    }

    /// The last writes, at shutdown; the writer thread writes no more after this.
    fn stop(&self) {
        for _ in 0..Self::FILES {
            self.write_next();
        }
        // held until the process exits: the writer thread blocks on it
        if let Ok(guard) = self.round.lock() {
            std::mem::forget(guard);
        }
    }
}
