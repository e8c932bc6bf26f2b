//! A progress bar per training epoch (step count, running loss, samples/s, ETA) on stderr when
//! it is a terminal; nothing otherwise, since the per-epoch lines say it all in logs.

use anyhow::Result;
use descent::app::train::{EpochMetrics, Trainer};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

pub struct EpochProgress {
    bar: Option<ProgressBar>,
    batch: usize,
    start: Instant,
}

impl EpochProgress {
    pub fn new(epoch: usize, epochs: usize, steps: usize, batch: usize) -> EpochProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(steps as u64);
            if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}") {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_prefix(format!("epoch {epoch}/{epochs}"));
            b
        });
        EpochProgress { bar, batch, start: Instant::now() }
    }

    /// Steps between updates (0: no updates, so no loss is read back for them).
    pub fn every(&self) -> usize {
        if self.bar.is_some() {
            25
        } else {
            0
        }
    }

    pub fn update(&self, step: usize, _steps: usize, loss: f64) {
        if let Some(b) = &self.bar {
            let rate = (step * self.batch) as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            b.set_position(step as u64);
            b.set_message(format!("loss {loss:.4}, {rate:.0} samples/s"));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// One epoch of `t` under a progress bar, then its one-line summary printed (what `train` and
/// `compare` do for every epoch).
pub fn run_epoch(t: &mut Trainer, epochs: usize) -> Result<EpochMetrics> {
    let bar = EpochProgress::new(t.epoch() + 1, epochs, t.steps_per_epoch(), t.config().batch_size);
    let m = t.run_epoch(|s, n, loss| bar.update(s, n, loss), bar.every())?;
    bar.finish();
    println!("{}", m.line(epochs));
    Ok(m)
}
