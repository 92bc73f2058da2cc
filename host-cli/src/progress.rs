//! Progress reporting: bars with bytes, rate and ETA on a terminal (indicatif), plain lines
//! on a pipe or log, nothing with `--quiet`. Messages and labels often quote a bundle's
//! references or the engine's replies: they are printed through the core's `safe_text`
//! (control characters escaped, length capped), one line each.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `1.5 MB`-style sizes: the core's, which the page shows too.
pub use ddiff_core::display::human_bytes;
use ddiff_core::display::safe_text;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Bars on stderr.
    Bars,
    /// A line per item and every few seconds on stderr.
    Lines,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// Bars on a terminal, lines otherwise, nothing when quiet.
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        }
    }
}

/// A set of concurrent progress items.
#[derive(Clone)]
pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
}

/// One transfer.
#[derive(Clone)]
pub struct Item {
    mode: Mode,
    bar: Option<ProgressBar>,
    label: Arc<str>,
    total: u64,
    done: Arc<AtomicU64>,
    last_line: Arc<Mutex<Instant>>,
    started: Instant,
}

impl Progress {
    /// A reporter in `mode`.
    pub fn new(mode: Mode) -> Progress {
        let multi = MultiProgress::with_draw_target(match mode {
            Mode::Bars => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::hidden(),
        });
        Progress { mode, multi }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Prints a message line (above the bars on a terminal).
    pub fn println(&self, msg: impl AsRef<str>) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Bars => {
                let _ = self.multi.println(safe_text(msg.as_ref()));
            }
            Mode::Lines => eprintln!("{}", safe_text(msg.as_ref())),
        }
    }

    /// Starts an item of `total` bytes.
    pub fn item(&self, label: impl Into<String>, total: u64) -> Item {
        let label: Arc<str> = safe_text(&label.into()).into();
        let bar = (self.mode == Mode::Bars).then(|| {
            let b = self.multi.add(ProgressBar::new(total));
            b.set_style(
                ProgressStyle::with_template("{msg:24} {bar:30.cyan/blue} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_message(label.to_string());
            b
        });
        Item {
            mode: self.mode,
            bar,
            label,
            total,
            done: Arc::new(AtomicU64::new(0)),
            last_line: Arc::new(Mutex::new(Instant::now())),
            started: Instant::now(),
        }
    }
}

impl Item {
    /// Adds `n` bytes.
    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        match self.mode {
            Mode::Bars => {
                if let Some(b) = &self.bar {
                    b.set_position(done);
                }
            }
            Mode::Lines => {
                if let Ok(mut last) = self.last_line.lock() {
                    if last.elapsed() >= Duration::from_secs(5) {
                        *last = Instant::now();
                        eprintln!(
                            "{}: {} / {}",
                            self.label,
                            human_bytes(done),
                            human_bytes(self.total)
                        );
                    }
                }
            }
            Mode::Quiet => {}
        }
    }

    /// Marks the item done with a final message.
    pub fn finish(&self, what: &str) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let done = self.done.load(Ordering::Relaxed);
        match self.mode {
            Mode::Bars => {
                if let Some(b) = &self.bar {
                    b.finish_and_clear();
                }
                eprintln!(
                    "{} {what} ({}, {}/s)",
                    self.label,
                    human_bytes(done),
                    human_bytes((done as f64 / secs) as u64)
                );
            }
            Mode::Lines => eprintln!(
                "{} {what} ({}, {}/s)",
                self.label,
                human_bytes(done),
                human_bytes((done as f64 / secs) as u64)
            ),
            Mode::Quiet => {}
        }
    }

    /// Removes the bar without a message.
    pub fn clear(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
