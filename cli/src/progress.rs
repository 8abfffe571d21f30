//! Progress bars on an interactive terminal (indicatif); nothing at all otherwise.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use nymvisor_core::progress::{Progress, ProgressSink};

/// Draws bars on stderr.
#[derive(Debug)]
pub struct Bars;

struct Bar(ProgressBar);

impl Progress for Bar {
    fn set(&mut self, done: u64) {
        self.0.set_position(done);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl ProgressSink for Bars {
    fn begin(&self, label: &str, total: Option<u64>) -> Box<dyn Progress> {
        let bar = match total {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Box::new(Bar(bar))
    }
}
