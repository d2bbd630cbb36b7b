//! Progress output for `strait lab up` and `down`: a spinner per step on a
//! terminal, one plain line per step otherwise (CI logs, pipes).
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A sequence of steps, each shown while it runs and then ticked off with
/// its duration.
pub struct Steps {
    bar: Option<ProgressBar>,
    step: Option<(String, Instant)>,
    tty: bool,
}

impl Default for Steps {
    fn default() -> Self {
        Steps::new()
    }
}

impl Steps {
    /// Steps on stderr.
    pub fn new() -> Steps {
        Steps {
            bar: None,
            step: None,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Starts a step (finishing the previous one).
    pub fn start(&mut self, message: impl Into<String>) {
        self.done();
        let message = message.into();
        if self.tty {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("  {spinner:.cyan} {msg} {elapsed:.dim}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(message.clone());
            bar.enable_steady_tick(Duration::from_millis(80));
            self.bar = Some(bar);
        } else {
            eprintln!("  … {message}");
        }
        self.step = Some((message, Instant::now()));
    }

    /// Updates the running step's message (e.g. "pods 3/12").
    pub fn detail(&mut self, detail: &str) {
        if let (Some(bar), Some((message, _))) = (&self.bar, &self.step) {
            bar.set_message(format!("{message}: {detail}"));
        }
    }

    /// Ticks off the running step.
    pub fn done(&mut self) {
        if let Some((message, started)) = self.step.take() {
            let line = format!("  ✔ {message} ({:.1} s)", started.elapsed().as_secs_f64());
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
            eprintln!("{line}");
        }
    }

    /// Marks the running step as failed.
    pub fn fail(&mut self) {
        if let Some((message, _)) = self.step.take() {
            let line = format!("  ✘ {message}");
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
            eprintln!("{line}");
        }
    }
}
