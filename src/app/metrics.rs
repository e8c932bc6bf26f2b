//! Training metrics as files: `metrics.json` (the schema users script against), `metrics.csv`,
//! the training-loss and test-accuracy figures (feature `app`), and a markdown summary table.
//!
//! Schema: `{"case", "dataset", "device", "batch_size", "seed", "shuffle", "runs": [{"optimizer",
//! "hyperparameters": {PyTorch names}, "optim_bits", "schedule", "epochs": [{"epoch",
//! "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds"}]}]}`.

#[cfg(feature = "app")]
use crate::app::plot::{self, Kind, Panel, Series};
use crate::optim::OptimConfig;
use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// One epoch's figures, as `metrics.json` stores them.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub seconds: f64,
}

impl EpochMetrics {
    pub fn line(&self, epochs: usize) -> String {
        format!(
            "epoch {:>3}/{epochs}  train loss {:.4}  acc {:.4}  test loss {:.4}  acc {:.4}  {:.2}s",
            self.epoch, self.train_loss, self.train_accuracy, self.test_loss, self.test_accuracy, self.seconds
        )
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RunMetrics {
    /// The run's label: the optimizer's name, or a name like `sgd_momentum` for a variant.
    pub optimizer: String,
    pub hyperparameters: Value,
    /// The optimizer state's width: 32, 16 or 8.
    pub optim_bits: u32,
    pub schedule: String,
    pub epochs: Vec<EpochMetrics>,
}

impl RunMetrics {
    pub fn new(label: &str, config: &OptimConfig, schedule: &str) -> RunMetrics {
        RunMetrics {
            optimizer: label.to_string(),
            hyperparameters: config.to_json(),
            optim_bits: config.optim_bits().bits(),
            schedule: schedule.to_string(),
            epochs: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub case: String,
    pub dataset: String,
    pub device: String,
    pub batch_size: usize,
    pub seed: u64,
    /// The batch order: `randperm` or `dataloader` (see `descent train --help`).
    pub shuffle: String,
    pub runs: Vec<RunMetrics>,
}

impl Report {
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        write_file(path, text.as_bytes())
    }

    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let mut s = String::from("optimizer,epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n");
        for r in &self.runs {
            for e in &r.epochs {
                s += &format!(
                    "{},{},{},{},{},{},{}\n",
                    r.optimizer, e.epoch, e.train_loss, e.train_accuracy, e.test_loss, e.test_accuracy, e.seconds
                );
            }
        }
        write_file(path, s.as_bytes())
    }

    /// A markdown table: one row per run with its final and best figures.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| optimizer | hyperparameters | train loss | test accuracy | best test accuracy (epoch) | s/epoch |\n|---|---|---|---|---|---|\n",
        );
        for r in &self.runs {
            let Some(last) = r.epochs.last() else { continue };
            let best = r.epochs.iter().max_by(|a, b| a.test_accuracy.total_cmp(&b.test_accuracy)).unwrap_or(last);
            let mean_s = r.epochs.iter().map(|e| e.seconds).sum::<f64>() / r.epochs.len() as f64;
            let hp: Vec<String> = r
                .hyperparameters
                .as_object()
                .map(|o| o.iter().filter(|(k, _)| *k != "name").map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            s += &format!(
                "| {} | {} | {:.4} | {:.4} | {:.4} ({}) | {:.2} |\n",
                r.optimizer,
                hp.join(", "),
                last.train_loss,
                last.test_accuracy,
                best.test_accuracy,
                best.epoch,
                mean_s
            );
        }
        s
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// The figures: PNG line charts (feature `app`, which brings plotters).
#[cfg(feature = "app")]
impl Report {
    /// Training loss and test accuracy against epoch, one line per run.
    pub fn plot_loss(&self, path: &Path) -> Result<()> {
        let s = self.series(|e| e.train_loss);
        plot::line_chart(path, &format!("{}: training loss", self.case), "epoch", "training loss", &s)
    }

    pub fn plot_accuracy(&self, path: &Path) -> Result<()> {
        let s = self.series(|e| e.test_accuracy);
        let title = format!("{}: test accuracy", self.case);
        plot::line_charts(
            path,
            &[Panel { title: &title, x_label: "epoch", y_label: "test accuracy", series: &s, legend_low: true }],
        )
    }

    fn series(&self, f: impl Fn(&EpochMetrics) -> f64) -> Vec<Series> {
        self.runs
            .iter()
            .enumerate()
            .map(|(k, r)| {
                Series::new(
                    r.optimizer.clone(),
                    r.epochs.iter().map(|e| (e.epoch as f64, f(e))).collect(),
                    Kind::Path,
                    k,
                )
            })
            .collect()
    }
}
