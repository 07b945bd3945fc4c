//! Progress of a transfer on stderr: a line redrawn in place on a terminal (bytes, percent,
//! rate, time left), plain lines a few seconds apart when stderr is a file or a pipe, so
//! that logs of scripted runs stay readable.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a line is written when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the terminal line is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(200);

pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    /// Bytes done before this run (a resumed transfer): not counted in the rate.
    resumed_at: u64,
    started: Instant,
    last_drawn: Option<Instant>,
    terminal: bool,
    quiet: bool,
}

impl Progress {
    /// Progress of `label` from `done` bytes of `total` (unknown for a stream).
    pub fn new(label: impl Into<String>, done: u64, total: Option<u64>, quiet: bool) -> Self {
        Self {
            label: label.into(),
            total,
            done,
            resumed_at: done,
            started: Instant::now(),
            last_drawn: None,
            terminal: std::io::stderr().is_terminal(),
            quiet,
        }
    }

    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        let every = if self.terminal { REDRAW_EVERY } else { PLAIN_EVERY };
        if self.last_drawn.is_none_or(|at| at.elapsed() >= every) {
            self.draw(false);
        }
    }

    /// The last line, with the whole transfer's figures.
    pub fn finish(&mut self) {
        self.draw(true);
    }

    fn draw(&mut self, last: bool) {
        self.last_drawn = Some(Instant::now());
        if self.quiet {
            return;
        }
        let line = self.line();
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{line}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    fn line(&self) -> String {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = (self.done - self.resumed_at) as f64 / elapsed;
        let mut line = format!("{}: {}", self.label, size(self.done));
        if let Some(total) = self.total.filter(|&t| t > 0) {
            let percent = 100.0 * self.done as f64 / total as f64;
            line.push_str(&format!(" of {} ({percent:.0} %)", size(total)));
            if rate > 0.0 && self.done < total {
                let left = (total - self.done) as f64 / rate;
                line.push_str(&format!(", {}/s, {} left", size(rate as u64), duration(left)));
                return line;
            }
        }
        line.push_str(&format!(", {}/s", size(rate as u64)));
        line
    }
}

/// Bytes in decimal units, as download tools show them.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn duration(seconds: f64) -> String {
    let seconds = seconds.round() as u64;
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1_500_000), "1.5 MB");
        assert_eq!(size(2_000_000_000), "2.0 GB");
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(125.0), "2 min 5 s");
        assert_eq!(duration(7300.0), "2 h 1 min");
    }

    #[test]
    fn a_resumed_transfer_counts_only_its_own_bytes_in_the_rate() {
        let mut progress = Progress::new("up", 500, Some(1000), true);
        progress.started = Instant::now() - Duration::from_secs(1);
        progress.done = 750;
        let line = progress.line();
        assert!(line.starts_with("up: 750 B of 1.0 kB (75 %)"), "{line}");
        assert!(line.contains("250 B/s") || line.contains("249 B/s"), "{line}");
    }
}
