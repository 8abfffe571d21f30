//! systemd readiness notifications (`Type=notify`): a few datagrams to `$NOTIFY_SOCKET`, no
//! dependency. Without `NOTIFY_SOCKET` (not under systemd) every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};

use crate::env::Env;

/// Where notifications go, if anywhere.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<String>,
}

impl Notifier {
    pub fn from_env(env: &Env) -> Notifier {
        Notifier {
            socket: env.get_non_empty("NOTIFY_SOCKET").map(str::to_owned),
        }
    }

    /// Sends `state` (newline-separated `KEY=value` lines). Best effort: failures are logged at
    /// debug level and never disturb supervision.
    pub fn send(&self, state: &str) {
        let Some(socket) = &self.socket else { return };
        if let Err(e) = Self::send_to(socket, state) {
            tracing::debug!("could not notify systemd at {socket}: {e}");
        }
    }

    fn send_to(socket: &str, state: &str) -> std::io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        let addr = match socket.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())?
            }
            None => SocketAddr::from_pathname(socket)?,
        };
        sock.send_to_addr(state.as_bytes(), &addr)?;
        Ok(())
    }

    /// The daemon runs: `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// The watchdog keep-alive.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when systemd set it for this
    /// process (`WATCHDOG_PID` unset or ours).
    pub fn watchdog_interval(env: &Env) -> Option<std::time::Duration> {
        let usec: u64 = env.get_non_empty("WATCHDOG_USEC")?.trim().parse().ok()?;
        if let Some(pid) = env.get_non_empty("WATCHDOG_PID")
            && pid.trim().parse::<u32>().ok() != Some(std::process::id())
        {
            return None;
        }
        (usec > 0).then(|| std::time::Duration::from_micros(usec / 2))
    }
}
