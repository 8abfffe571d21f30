//! nymvisor's own log output: text (or JSON) lines on stderr, `RUST_LOG` respected, silent when
//! `disable_logs` is set.
//!
//! Logging never takes the supervisor down nor holds it up:
//! - when whatever reads stderr goes away (a log shipper, `tee`, `| head`), the first failed
//!   write marks logging as gone and later lines are dropped without a system call;
//! - when it stops reading (a stuck `logger`, a paused shipper) and the pipe is full, a line is
//!   dropped instead of written (stderr is asked with `poll` first, never put in non-blocking
//!   mode: the daemon shares it), counted (`nymvisor_log_lines_dropped_total`), and once lines
//!   go through again one line says how many were lost.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nymvisor_core::metrics::LOG_LINES_DROPPED;

use nymvisor_core::config::{Config, LogFormat};
use nymvisor_core::env::Env;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init(env: &Env, config: Option<&Config>) {
    let disabled = config.is_some_and(|c| c.nymvisor.disable_logs);
    let default = if disabled { "off" } else { "info" };
    let directive = if disabled {
        default
    } else {
        env.get_non_empty("RUST_LOG").unwrap_or(default)
    };
    // `Targets` understands the usual `RUST_LOG` forms (`debug`, `warn,nymvisor_core=debug`)
    // without pulling a regex engine into a process that should stay small.
    let filter: Targets = directive.parse().unwrap_or_else(|_| {
        Targets::new().with_default(if disabled {
            LevelFilter::OFF
        } else {
            LevelFilter::INFO
        })
    });
    let json = config.is_some_and(|c| c.nymvisor.log_format == LogFormat::Json);
    let builder = tracing_subscriber::fmt()
        // the builder's own ceiling defaults to INFO, which would hide `RUST_LOG=debug`:
        // `filter` alone decides
        .with_max_level(LevelFilter::TRACE)
        .with_writer(|| LogWriter)
        // its report of a failed write is an eprintln!, which panics on a closed pipe
        .log_internal_errors(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .finish()
            .with(filter)
            .try_init()
    } else if stderr_is_journal(env) {
        // journald timestamps every line itself and reads `<N>` as the priority
        builder
            .without_time()
            .with_level(false)
            .with_ansi(false)
            .event_format(Journal(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_level(false)
                    .with_target(false),
            ))
            .finish()
            .with(filter)
            .try_init()
    } else {
        builder.finish().with(filter).try_init()
    };
}

/// Whether stderr is the journal: `JOURNAL_STREAM` (`<device>:<inode>`, set by systemd) names
/// the very file stderr is.
// `st_dev`/`st_ino` are u64 here but narrower on some targets
#[allow(clippy::unnecessary_cast)]
fn stderr_is_journal(env: &Env) -> bool {
    let Some((dev, ino)) = env
        .get_non_empty("JOURNAL_STREAM")
        .and_then(|v| v.split_once(':'))
    else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(st.st_dev as u64)
        && ino.parse::<u64>().ok() == Some(st.st_ino as u64)
}

/// Text lines prefixed with the syslog priority journald understands (`<3>` error … `<7>`
/// debug), without a timestamp.
struct Journal<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Journal<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            tracing::Level::DEBUG | tracing::Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Set once stderr has been found closed.
static GONE: AtomicBool = AtomicBool::new(false);

/// Lines dropped since the last one that went through (for the "N dropped" line).
static DROPPED_SINCE: AtomicU64 = AtomicU64::new(0);

/// Whether stderr can take a line now without blocking. A pipe or socket says so once it has
/// room for a small write (`PIPE_BUF`, 4 KiB for pipes); a file or terminal always does.
fn writable_now() -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let stderr = std::io::stderr();
    let mut fds = [PollFd::new(stderr.as_fd(), PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLOUT | PollFlags::POLLERR)),
        Ok(_) => false,
        // cannot ask: write as before
        Err(_) => true,
    }
}

/// stderr, until a write finds it closed; nothing after that. A line that stderr cannot take
/// at once is dropped and counted.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if GONE.load(Ordering::Relaxed) {
            return Ok(buf.len());
        }
        if !writable_now() {
            LOG_LINES_DROPPED.fetch_add(1, Ordering::Relaxed);
            DROPPED_SINCE.fetch_add(1, Ordering::Relaxed);
            return Ok(buf.len());
        }
        let lost = DROPPED_SINCE.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let note = format!(
                "nymvisor: {lost} log line(s) dropped: whatever reads nymvisor's output did not keep up\n"
            );
            let _ = std::io::stderr().write(note.as_bytes());
            if !writable_now() {
                LOG_LINES_DROPPED.fetch_add(1, Ordering::Relaxed);
                DROPPED_SINCE.fetch_add(1, Ordering::Relaxed);
                return Ok(buf.len());
            }
        }
        match std::io::stderr().write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                GONE.store(true, Ordering::Relaxed);
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if GONE.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::io::stderr().flush()
    }
}
