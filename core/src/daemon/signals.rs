//! The signals nymvisor handles while supervising: the stop signals (SIGINT, SIGTERM, SIGQUIT),
//! which stop the daemon and end nymvisor, and the ones forwarded to the daemon (SIGHUP,
//! SIGUSR1, SIGUSR2).

use nix::sys::signal::Signal;
use tokio::signal::unix::{Signal as Stream, SignalKind, signal};

use crate::error::{Error, Result};

/// Streams for every signal nymvisor forwards or acts on. Creating them replaces inherited
/// `SIG_IGN` dispositions, so a nymvisor started as a background job still honours SIGINT.
#[derive(Debug)]
pub struct Signals {
    int: Stream,
    term: Stream,
    quit: Stream,
    hup: Stream,
    usr1: Stream,
    usr2: Stream,
}

fn stream(kind: SignalKind) -> Result<Stream> {
    signal(kind).map_err(|source| Error::Signals {
        what: "stop and forwarded signals",
        source,
    })
}

/// The signals [`Signals`] handles.
fn handled() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    set
}

/// Blocks the handled signals (the first thing `main` does): as PID 1 the kernel drops a signal
/// that has no handler, so one sent in the first milliseconds would be lost; blocked, it waits
/// until [`unblock_handled`] once the handlers exist (or the command needs none). Children
/// start with an empty mask (the standard library resets it in every child).
pub fn block_handled() {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&handled()),
        None,
    );
}

/// Unblocks what [`block_handled`] blocked; a signal that arrived meanwhile is delivered now.
pub fn unblock_handled() {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
        Some(&handled()),
        None,
    );
}

/// Signals that stop nymvisor (forwarded, then the daemon is stopped and nymvisor exits).
pub fn is_stop(sig: Signal) -> bool {
    matches!(sig, Signal::SIGINT | Signal::SIGTERM | Signal::SIGQUIT)
}

impl Signals {
    pub fn new() -> Result<Signals> {
        Ok(Signals {
            int: stream(SignalKind::interrupt())?,
            term: stream(SignalKind::terminate())?,
            quit: stream(SignalKind::quit())?,
            hup: stream(SignalKind::hangup())?,
            usr1: stream(SignalKind::user_defined1())?,
            usr2: stream(SignalKind::user_defined2())?,
        })
    }

    /// The next signal. Cancel-safe.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::SIGINT,
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.quit.recv() => Signal::SIGQUIT,
            _ = self.hup.recv() => Signal::SIGHUP,
            _ = self.usr1.recv() => Signal::SIGUSR1,
            _ = self.usr2.recv() => Signal::SIGUSR2,
        }
    }

    /// A stop signal that has already arrived, if any (never waits). Other pending signals are
    /// consumed and ignored, as in [`Signals::recv_stop`].
    pub async fn try_recv_stop(&mut self) -> Option<Signal> {
        loop {
            let sig = tokio::select! {
                biased;
                sig = self.recv() => sig,
                () = std::future::ready(()) => return None,
            };
            if is_stop(sig) {
                return Some(sig);
            }
            tracing::info!("{sig} received while the daemon is not running; ignored");
        }
    }

    /// The next stop signal (others are ignored: there is no daemon to forward them to).
    pub async fn recv_stop(&mut self) -> Signal {
        loop {
            let sig = self.recv().await;
            if is_stop(sig) {
                return sig;
            }
            tracing::info!("{sig} received while the daemon is not running; ignored");
        }
    }
}
