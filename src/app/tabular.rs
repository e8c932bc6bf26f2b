//! Training an MLP on your own f32 data: `descent train --dataset npy:DIR`. The features and
//! targets are uploaded once ([`F32Dataset`]) and each batch is gathered on the device, in the
//! order PyTorch's loops draw it (`--shuffle randperm|dataloader`, from `--seed`), with the
//! model initialised as `torch.manual_seed(seed)` then `nn.Linear` would. The loss is
//! cross-entropy over class indices, or MSE, L1 or Huber over f32 targets ([`TabularLoss`]).
//!
//! ```no_run
//! use descent::app::tabular::{load_npy_dir, TabularLoss, TabularTrainer};
//! use descent::app::train::{ShuffleOrder, TrainConfig};
//! use descent::backend::{Act, Device};
//! use descent::optim::{OptimConfig, Schedule};
//!
//! # fn main() -> anyhow::Result<()> {
//! let data = load_npy_dir(std::path::Path::new("my-data"), TabularLoss::Mse, None)?;
//! let config = TrainConfig {
//!     epochs: 20,
//!     batch_size: 32,
//!     seed: 0,
//!     shuffle: ShuffleOrder::Randperm,
//!     hidden: vec![64, 64],
//!     act: Act::Tanh,
//!     optimizer: OptimConfig::defaults("adam")?.with_lr(1e-2),
//!     schedule: Schedule::Constant,
//!     eval_batch: 1000,
//! };
//! let mut t = TabularTrainer::new(Device::cpu(), &data, config, TabularLoss::Mse)?;
//! for _ in 0..20 {
//!     println!("{}", t.run_epoch()?.line(20));
//! }
//! # Ok(()) }
//! ```

use crate::app::clip::GradClip;
use crate::app::metrics::EpochMetrics;
use crate::app::train::{seeded_model, Shuffle, TrainConfig};
use crate::autograd::{Tape, Var};
use crate::backend::{Device, View};
#[cfg(not(target_arch = "wasm32"))]
use crate::data::tabular::{classes_in_npy, from_npy};
use crate::data::tabular::{DeviceF32Dataset, F32Dataset, Targets};
use crate::nn::Mlp;
use crate::optim::Optimizer;
use crate::tensor::Tensor;
use anyhow::{bail, ensure, Context, Result};
use web_time::Instant;

/// What the model is trained to minimise (`--loss`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
pub enum TabularLoss {
    /// Softmax cross-entropy over class indices (PyTorch's `CrossEntropyLoss()`).
    #[cfg_attr(feature = "app", value(name = "ce"))]
    CrossEntropy,
    /// Mean squared error (`MSELoss()`).
    Mse,
    /// Mean absolute error (`L1Loss()`).
    L1,
    /// `HuberLoss()` with PyTorch's default delta of 1.
    Huber,
}

impl TabularLoss {
    /// The name `--loss` takes.
    pub fn name(self) -> &'static str {
        match self {
            TabularLoss::CrossEntropy => "ce",
            TabularLoss::Mse => "mse",
            TabularLoss::L1 => "l1",
            TabularLoss::Huber => "huber",
        }
    }

    /// Whether the targets are class indices (else f32 values).
    pub fn is_classification(self) -> bool {
        self == TabularLoss::CrossEntropy
    }
}

/// A training split and, when the folder has one, a test split.
#[derive(Clone, Debug)]
pub struct NpyData {
    /// Where it came from, for the user.
    pub source: String,
    /// `train_x.npy` and `train_y.npy`.
    pub train: F32Dataset,
    /// `test_x.npy` and `test_y.npy`, if present.
    pub test: Option<F32Dataset>,
}

/// Read `dir/train_x.npy` and `dir/train_y.npy` (and `test_x.npy`, `test_y.npy` if both are
/// there) as [`from_npy`] reads them: float32 features; class indices for cross-entropy, float32
/// targets (one or more per row) otherwise. `classes` defaults to the largest label plus one.
/// (Not in the browser, which has no files.)
#[cfg(not(target_arch = "wasm32"))]
pub fn load_npy_dir(dir: &std::path::Path, loss: TabularLoss, classes: Option<usize>) -> Result<NpyData> {
    ensure!(dir.is_dir(), "npy:{}: no such directory (it holds train_x.npy and train_y.npy)", dir.display());
    let split = |name: &str, classes: Option<usize>| {
        from_npy(&dir.join(format!("{name}_x.npy")), &dir.join(format!("{name}_y.npy")), classes)
    };
    let has_test = dir.join("test_x.npy").exists() || dir.join("test_y.npy").exists();
    let classes = match (loss.is_classification(), classes) {
        (false, _) => None,
        (true, Some(c)) => Some(c),
        (true, None) => {
            let hint = |e: anyhow::Error| {
                anyhow::anyhow!("{e:#}; for float32 regression targets, use --loss mse, l1 or huber")
            };
            let mut most = classes_in_npy(&dir.join("train_y.npy")).map_err(hint)?;
            if has_test {
                most = most.max(classes_in_npy(&dir.join("test_y.npy")).map_err(hint)?);
            }
            Some(most)
        }
    };
    let train = split("train", classes)?;
    let test = if has_test { Some(split("test", classes)?) } else { None };
    if let Some(t) = &test {
        ensure!(
            t.cols == train.cols && t.targets.width() == train.targets.width(),
            "npy:{}: the test split has {} features and {} targets per row, the training split {} and {}",
            dir.display(),
            t.cols,
            t.targets.width(),
            train.cols,
            train.targets.width()
        );
    }
    let source = format!(
        "npy:{} ({} training rows{}, {} features)",
        dir.display(),
        train.rows,
        test.as_ref().map_or(", no test split".to_string(), |t| format!(", {} test rows", t.rows)),
        train.cols
    );
    Ok(NpyData { source, train, test })
}

/// The loop over one MLP, optimizer and f32 dataset on one device.
pub struct TabularTrainer {
    dev: Device,
    model: Mlp,
    opt: Optimizer,
    config: TrainConfig,
    loss: TabularLoss,
    shuffle: Shuffle,
    train: DeviceF32Dataset,
    test: Option<DeviceF32Dataset>,
    test_order: Option<crate::backend::ByteBuffer>,
    /// [Σ loss over rows, correct count] since the last read.
    sums: View,
    clip: Option<GradClip>,
    epoch: usize,
}

impl TabularTrainer {
    /// Upload `data`, build the model (`cols`, the hidden sizes, then the class count or the
    /// target width) and the optimizer.
    pub fn new(mut dev: Device, data: &NpyData, config: TrainConfig, loss: TabularLoss) -> Result<TabularTrainer> {
        config.validate()?;
        let out = match (&data.train.targets, loss.is_classification()) {
            (Targets::Classes { classes, .. }, true) => *classes,
            (Targets::Values { width, .. }, false) => *width,
            (_, true) => bail!("--loss ce needs class indices; these targets are f32 values"),
            (_, false) => bail!("--loss {} needs f32 targets; these are class indices", loss.name()),
        };
        ensure!(
            data.train.rows < u32::MAX as usize / 20,
            "{} training rows are more than descent shuffles",
            data.train.rows
        );
        let mut sizes = vec![data.train.cols];
        sizes.extend(&config.hidden);
        sizes.push(out);
        let (model, shuffle) = seeded_model(&mut dev, &sizes, &config)?;
        let opt = Optimizer::new(&mut dev, &model.arena, config.optimizer.clone(), config.schedule.clone())?;
        let train = data.train.upload(&mut dev)?;
        let test = data.test.as_ref().map(|t| t.upload(&mut dev)).transpose()?;
        let test_order = match &test {
            Some(t) => Some(t.upload_order(&mut dev, &(0..t.rows as u32).collect::<Vec<_>>())?),
            None => None,
        };
        let sums = dev.alloc_zeroed(2)?;
        Ok(TabularTrainer {
            dev,
            model,
            opt,
            config,
            loss,
            shuffle,
            train,
            test,
            test_order,
            sums,
            clip: None,
            epoch: 0,
        })
    }

    /// Clip the gradients before every step (`None`: no clipping).
    pub fn set_grad_clip(&mut self, clip: Option<GradClip>) -> Result<()> {
        if let Some(GradClip::Norm(v) | GradClip::Value(v)) = clip {
            ensure!(v.is_finite() && v >= 0.0, "a gradient clip needs a finite bound >= 0, got {v}");
        }
        self.clip = clip;
        Ok(())
    }

    /// The model.
    pub fn model(&self) -> &Mlp {
        &self.model
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &Optimizer {
        &self.opt
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// Epochs trained so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Optimizer steps per epoch (the last batch may be smaller).
    pub fn steps_per_epoch(&self) -> usize {
        self.train.rows.div_ceil(self.config.batch_size)
    }

    /// Record the loss of `rows` rows of `split` from `order[start..]`, adding [Σ loss, correct]
    /// into `sums`; with `grad`, through the parameters.
    fn loss_of(
        tape: &mut Tape,
        model: &Mlp,
        loss: TabularLoss,
        split: &DeviceF32Dataset,
        batch: (crate::backend::ByteBuffer, usize, usize),
        sums: View,
        grad: bool,
    ) -> Result<Var> {
        let (order, start, rows) = batch;
        let (x, y) = split.batch(tape.device(), order, start, rows)?;
        let x = tape.input_owned(Tensor::new(x, &[rows, split.cols])?);
        let pred = if grad { model.forward(tape, x)? } else { model.forward_no_grad(tape, x)? };
        if loss.is_classification() {
            tape.adopt(y);
            return tape.softmax_ce(pred, y, Some(sums));
        }
        let target = tape.input_owned(Tensor::new(y, &[rows, split.width])?);
        let l = match loss {
            TabularLoss::Mse => tape.mse(pred, target)?,
            TabularLoss::L1 => tape.l1(pred, target)?,
            _ => tape.huber(pred, target, 1.0)?,
        };
        let lv = tape.value(l).view;
        tape.device().axpby(rows as f32, lv, 1.0, sums.slice(0, 1));
        Ok(l)
    }

    /// One epoch over the shuffled training rows, then the test split: the mean losses, the
    /// accuracies (NaN for regression) and the seconds it took.
    pub fn run_epoch(&mut self) -> Result<EpochMetrics> {
        let started = Instant::now();
        let order = self.shuffle.epoch_order(self.train.rows);
        let order = self.train.upload_order(&mut self.dev, &order)?;
        let (rows, b) = (self.train.rows, self.config.batch_size);
        for start in (0..rows).step_by(b) {
            let count = b.min(rows - start);
            {
                let mut tape = Tape::new(&mut self.dev);
                let l = Self::loss_of(
                    &mut tape,
                    &self.model,
                    self.loss,
                    &self.train,
                    (order, start, count),
                    self.sums,
                    true,
                )?;
                tape.backward(l)?;
            }
            match self.clip {
                Some(GradClip::Norm(m)) => self.model.arena.clip_grad_norm(&mut self.dev, m)?.release(&mut self.dev),
                Some(GradClip::Value(v)) => self.model.arena.clip_grad_value(&mut self.dev, v)?,
                None => {}
            }
            self.opt.step(&mut self.dev, &self.model.arena)?;
            self.dev.flush()?;
        }
        self.dev.free_bytes(order);
        let (train_loss, train_accuracy) = self.take_means(rows)?;
        self.epoch += 1;
        ensure!(
            train_loss.is_finite(),
            "the training loss is {train_loss} in epoch {}: training diverged; try a smaller --lr or clip the gradients (--clip-grad-norm)",
            self.epoch
        );
        let (test_loss, test_accuracy) = self.evaluate()?;
        Ok(EpochMetrics {
            epoch: self.epoch,
            train_loss,
            train_accuracy,
            test_loss,
            test_accuracy,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The test split's mean loss and accuracy (NaN for both without a test split, and for the
    /// accuracy of a regression).
    pub fn evaluate(&mut self) -> Result<(f64, f64)> {
        let (Some(test), Some(order)) = (self.test, self.test_order) else { return Ok((f64::NAN, f64::NAN)) };
        for start in (0..test.rows).step_by(self.config.eval_batch) {
            let count = self.config.eval_batch.min(test.rows - start);
            let mut tape = Tape::new(&mut self.dev);
            Self::loss_of(&mut tape, &self.model, self.loss, &test, (order, start, count), self.sums, false)?;
        }
        self.take_means(test.rows)
    }

    /// Read and zero the sums: (mean loss, accuracy) over `rows` rows.
    fn take_means(&mut self, rows: usize) -> Result<(f64, f64)> {
        let s = self.dev.read(self.sums).context("reading the epoch's loss")?;
        self.dev.fill(self.sums, 0.0);
        let accuracy = if self.loss.is_classification() { s[1] as f64 / rows as f64 } else { f64::NAN };
        Ok((s[0] as f64 / rows as f64, accuracy))
    }

    /// One line for an epoch: the loss's name, and accuracies only where they mean something.
    pub fn line(&self, m: &EpochMetrics) -> String {
        if self.loss.is_classification() {
            return m.line(self.config.epochs);
        }
        let name = self.loss.name();
        let test = if m.test_loss.is_nan() { String::new() } else { format!("  test {name} {:.6}", m.test_loss) };
        format!(
            "epoch {:>3}/{}  train {name} {:.6}{test}  {:.2}s",
            m.epoch, self.config.epochs, m.train_loss, m.seconds
        )
    }
}
