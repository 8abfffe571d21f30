//! Progress of long operations (downloads, backups), for an interactive display.
//!
//! The core only reports; the CLI decides whether anything is drawn (a terminal on stderr) and
//! how. Without a [`ProgressSink`] nothing is reported, so non-interactive logs stay clean.

use std::fmt::Debug;

/// Creates progress displays.
pub trait ProgressSink: Debug + Send + Sync {
    /// Starts a display for `label`; `total` in bytes when known.
    fn begin(&self, label: &str, total: Option<u64>) -> Box<dyn Progress>;
}

/// One display; finished when dropped.
pub trait Progress: Send {
    /// Sets the number of bytes done so far.
    fn set(&mut self, done: u64);
}
