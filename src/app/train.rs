//! The training loop: the dataset is uploaded once as bytes, each mini-batch is gathered by
//! index on the device, and forward, loss, backward and the optimizer step are issued without
//! reading anything back; loss and accuracy accumulate on the device and are read once per
//! epoch (and at progress updates).

pub use crate::app::checkpoint::{config_from_checkpoint, CHECKPOINT_FORMAT};
pub use crate::app::clip::GradClip;
pub use crate::app::metrics::EpochMetrics;
use crate::autograd::data_parallel::{DataParallel, StepPath, StepRun, SLICE_ROWS};
use crate::autograd::{Tape, Var};
use crate::backend::{wait, Act, ByteBuffer, Counters, Device, Gather, GradCheck};
use crate::data::{Dataset, Split};
use crate::message::Setting;
use crate::nn::Mlp;
use crate::optim::{OptimConfig, Optimizer, Schedule};
use crate::rng::Rng;
use crate::said;
use crate::tensor::{Tensor, View};
use crate::torch_rng::TorchGenerator;
use anyhow::{bail, ensure, Result};
use std::path::PathBuf;
use web_time::Instant;

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Initial weights as `torch.manual_seed(seed)` then the model gives them (bit for bit).
    pub seed: u64,
    /// Which PyTorch loop's batch order to reproduce.
    pub shuffle: ShuffleOrder,
    pub hidden: Vec<usize>,
    pub act: Act,
    pub optimizer: OptimConfig,
    pub schedule: Schedule,
    /// Rows per forward pass when evaluating.
    pub eval_batch: usize,
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(self.epochs > 0, said![Setting::Epochs, " must be at least 1"]);
        ensure!(self.batch_size > 0, said![Setting::BatchSize, " must be at least 1"]);
        ensure!(self.eval_batch > 0, "the evaluation batch must be at least 1");
        ensure!(
            !self.hidden.is_empty() && self.hidden.iter().all(|&h| h > 0),
            said![Setting::Hidden, " needs one or more sizes > 0, e.g. 128,128"]
        );
        self.optimizer.validate()?;
        self.schedule.validate()
    }
}

/// The order of the training rows each epoch, as one of two PyTorch loops draws it after
/// `torch.manual_seed(seed)` and building the model (see [`crate::torch_rng`]).
/// The command line's `--shuffle randperm|dataloader`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
pub enum ShuffleOrder {
    /// `g = torch.Generator().manual_seed(seed)`, then `torch.randperm(n, generator=g)` each
    /// epoch: a loop over in-memory tensors (and the figures the project's issues quote).
    Randperm,
    /// `DataLoader(train, batch_size=B, shuffle=True)`: each epoch seeds a fresh generator from
    /// the global one.
    #[cfg_attr(feature = "app", value(name = "dataloader"))]
    DataLoader,
}

impl ShuffleOrder {
    pub fn parse(s: &str) -> Result<ShuffleOrder> {
        match s {
            "randperm" => Ok(ShuffleOrder::Randperm),
            "dataloader" => Ok(ShuffleOrder::DataLoader),
            _ => bail!(said!["unknown ", Setting::Shuffle, format!(" '{s}': use randperm or dataloader")]),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ShuffleOrder::Randperm => "randperm",
            ShuffleOrder::DataLoader => "dataloader",
        }
    }
}

/// A split uploaded to the device as bytes.
pub(crate) struct DeviceSplit {
    images: ByteBuffer,
    labels: ByteBuffer,
    pub(crate) rows: usize,
}

impl DeviceSplit {
    fn upload(dev: &mut Device, s: &Split) -> Result<DeviceSplit> {
        Ok(DeviceSplit { images: dev.upload_bytes(&s.images)?, labels: dev.upload_bytes(&s.labels)?, rows: s.rows })
    }
}

fn index_bytes(idx: &[u32]) -> Vec<u8> {
    idx.iter().flat_map(|i| i.to_le_bytes()).collect()
}

/// The training loop over one model, optimizer and dataset on one device. Build it with
/// [`Trainer::new`], run [`Trainer::run_epoch`] (or [`Trainer::step`] for finer control), and
/// read what it holds through the accessors.
pub struct Trainer {
    /// The dataset's name, recorded in checkpoints.
    pub(crate) dataset: String,
    /// Where to save checkpoints, and every how many optimizer steps (0: at epoch ends only).
    pub(crate) checkpoint: Option<(PathBuf, u64)>,
    pub(crate) dev: Device,
    pub(crate) model: Mlp,
    pub(crate) opt: Optimizer,
    pub(crate) config: TrainConfig,
    /// Where the next epoch's order comes from.
    pub(crate) shuffle: Shuffle,
    pub(crate) epoch: usize,
    row_len: usize,
    pub(crate) train: DeviceSplit,
    test: DeviceSplit,
    test_order: ByteBuffer,
    /// `shuffle` as it was before this epoch's order was drawn, so a mid-epoch checkpoint can
    /// rebuild the order.
    pub(crate) epoch_shuffle: Shuffle,
    /// Steps of the current epoch already taken.
    pub(crate) step_in_epoch: usize,
    /// On the device, read back together: [Σ loss, correct] accumulated over the batches since
    /// the last report, then [optimizer step, element] of the first non-finite gradient seen,
    /// or [-1, -1].
    pub(crate) metrics: View,
    /// With anomaly detection: [tag, element] of the first non-finite op output or gradient.
    anomaly: Option<View>,
    /// How a step's forward and backward pass run on the CPU backend: in row slices on every
    /// core, or op by op.
    dp: DataParallel,
    /// How the last step ran.
    last_run: Option<StepRun>,
    /// Clipping before each optimizer step.
    clip: Option<GradClip>,
}

impl Trainer {
    pub fn new(mut dev: Device, data: &Dataset, config: TrainConfig) -> Result<Trainer> {
        config.validate()?;
        if data.train.rows == 0 || data.test.rows == 0 {
            bail!("dataset {} has an empty split", data.name);
        }
        ensure!(
            data.train.rows < u32::MAX as usize / 20,
            "dataset {} has {} training rows; descent shuffles at most {} (as torch.randperm's 32-bit path does)",
            data.name,
            data.train.rows,
            u32::MAX / 20 - 1
        );
        let mut sizes = vec![data.row_len];
        sizes.extend(&config.hidden);
        sizes.push(data.classes);
        Self::check_fits(&dev, data, &sizes, &config.optimizer)?;
        let (model, shuffle) = seeded_model(&mut dev, &sizes, &config)?;
        let opt = Optimizer::new(&mut dev, &model.arena, config.optimizer.clone(), config.schedule.clone())?;
        let train = DeviceSplit::upload(&mut dev, &data.train)?;
        let test = DeviceSplit::upload(&mut dev, &data.test)?;
        let order: Vec<u32> = (0..data.test.rows as u32).collect();
        let test_order = dev.upload_bytes(&index_bytes(&order))?;
        let metrics = dev.alloc_zeroed(4)?;
        dev.fill(metrics.slice(2, 2), -1.0);
        let dp = DataParallel::new(StepPath::Auto, SLICE_ROWS, &[model.arena.grads], &[metrics.slice(0, 2)])?;
        Ok(Trainer {
            dataset: data.name.clone(),
            checkpoint: None,
            epoch_shuffle: shuffle.clone(),
            step_in_epoch: 0,
            dev,
            model,
            opt,
            config,
            shuffle,
            epoch: 0,
            row_len: data.row_len,
            train,
            test,
            test_order,
            metrics,
            anomaly: None,
            dp,
            last_run: None,
            clip: None,
        })
    }

    /// How steps run on the CPU backend (see [`crate::autograd::data_parallel`]): `path`, with
    /// `slice_rows` rows per slice. The default is [`StepPath::Auto`] with [`SLICE_ROWS`]. The
    /// choice depends on shapes alone, so a run is the same on any number of threads; resuming
    /// a checkpoint bit for bit needs the same choice.
    pub fn set_cpu_step(&mut self, path: StepPath, slice_rows: usize) -> Result<()> {
        self.dp = DataParallel::new(path, slice_rows, &[self.model.arena.grads], &[self.metrics.slice(0, 2)])?;
        Ok(())
    }

    /// Clip the gradients before every optimizer step (`None`: no clipping, the default). The
    /// check for non-finite gradients runs before clipping, so it still names the tensor where
    /// a NaN appeared. Checkpoints record it (`grad_clip`), and [`Trainer::restore`] sets it
    /// back.
    pub fn set_grad_clip(&mut self, clip: Option<GradClip>) -> Result<()> {
        if let Some(GradClip::Norm(v) | GradClip::Value(v)) = clip {
            ensure!(v.is_finite() && v >= 0.0, "a gradient clip needs a finite bound >= 0, got {v}");
        }
        self.clip = clip;
        Ok(())
    }

    /// The clipping set with [`Trainer::set_grad_clip`].
    pub fn grad_clip(&self) -> Option<GradClip> {
        self.clip
    }

    /// How the last step ran: in how many slices, or per op and why.
    pub fn last_step_run(&self) -> Option<&StepRun> {
        self.last_run.as_ref()
    }

    /// Why steps of this trainer run per op on the CPU backend, `None` if full batches run in
    /// slices (the epoch's last, smaller batch may still run per op).
    pub fn cpu_step_plan(&self) -> Option<String> {
        self.dp.plan(&self.dev, self.config.batch_size)
    }

    /// Refuse a model and dataset the device cannot hold, before allocating any of it: the
    /// model ([`Mlp::footprint`]), the optimizer's state, and the dataset's bytes with the
    /// row orders of both splits.
    fn check_fits(dev: &Device, data: &Dataset, sizes: &[usize], opt: &OptimConfig) -> Result<()> {
        let name = sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-");
        let what = format!("a {name} model with {}", opt.name());
        let (model, arena) = Mlp::footprint(sizes, dev.is_gpu());
        let state = arena.saturating_mul(opt.state_names().len() as u64);
        let data_bytes = [&data.train, &data.test]
            .iter()
            .map(|s| (s.images.len() + s.labels.len() + 4 * s.rows) as u64)
            .sum::<u64>();
        // The dataset is gathered chunk by chunk; the arena is read whole by the matmuls.
        let largest = [&data.train, &data.test].iter().map(|s| s.images.len() as u64).max().unwrap_or(0).max(arena);
        let total = model.saturating_add(state).saturating_add(data_bytes);
        dev.check_fits_bound(&what, total, largest, arena, said!["reduce ", Setting::Hidden])
    }

    /// Epochs completed.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The model being trained (its arena holds the current weights).
    pub fn model(&self) -> &Mlp {
        &self.model
    }

    /// The optimizer: its configuration, schedule and step count.
    pub fn optimizer(&self) -> &Optimizer {
        &self.opt
    }

    /// The configuration the trainer was built with.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The device the trainer runs on.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// The dataset's name, as checkpoints record it.
    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// Save a checkpoint to `path` at every epoch's end, and every `every` optimizer steps
    /// within an epoch when `every > 0`; `None` stops saving.
    pub fn set_checkpoint(&mut self, path: Option<PathBuf>, every: u64) {
        self.checkpoint = path.map(|p| (p, every));
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.train.rows.div_ceil(self.config.batch_size)
    }

    /// Gather rows `order[start..start + count]` of a split onto `tape`: the batch as an input
    /// and its labels, both released with the tape.
    fn gather(
        tape: &mut Tape,
        row_len: usize,
        split: &DeviceSplit,
        order: ByteBuffer,
        start: usize,
        count: usize,
    ) -> Result<(Var, View)> {
        let dev = tape.device();
        let x = dev.alloc(count * row_len)?;
        let y = dev.alloc(count)?;
        dev.gather(&Gather {
            images: split.images,
            labels: split.labels,
            indices: order,
            start,
            count,
            row_len,
            scale: 1.0 / 255.0,
            x,
            y,
        });
        tape.adopt(y);
        Ok((tape.input_owned(Tensor::new(x, &[count, row_len])?), y))
    }

    /// Check every op's output and gradient each step and name the first non-finite one
    /// (reads a flag back every step: for debugging, slower on a GPU).
    pub fn detect_anomaly(&mut self) -> Result<()> {
        let flag = self.dev.alloc(2)?;
        self.dev.fill(flag, -1.0);
        self.anomaly = Some(flag);
        Ok(())
    }

    /// One optimizer step on rows `order[start..start + count]`.
    pub fn step(&mut self, order: ByteBuffer, start: usize, count: usize) -> Result<()> {
        if self.anomaly.is_some() {
            self.step_checked(order, start, count)?;
        } else {
            let (model, split, row_len, metrics) = (&self.model, &self.train, self.row_len, self.metrics.slice(0, 2));
            let run = self.dp.backward(&mut self.dev, count, |tape, s| {
                let (x, y) = Self::gather(tape, row_len, split, order, start + s.start, s.rows)?;
                let logits = model.forward(tape, x)?;
                tape.softmax_ce(logits, y, Some(metrics))
            })?;
            self.last_run = Some(run);
        }
        self.finish_step()
    }

    /// The forward and backward pass with anomaly detection: per op, a flag read each step.
    fn step_checked(&mut self, order: ByteBuffer, start: usize, count: usize) -> Result<()> {
        let mut tape = Tape::new(&mut self.dev);
        tape.set_anomaly(self.anomaly);
        let (x, y) = Self::gather(&mut tape, self.row_len, &self.train, order, start, count)?;
        let logits = self.model.forward(&mut tape, x)?;
        let loss = tape.softmax_ce(logits, y, Some(self.metrics.slice(0, 2)))?;
        tape.backward(loss)?;
        if let Some(flag) = self.anomaly {
            let f = tape.device().read(flag)?;
            if f[0] >= 0.0 {
                let what = tape.describe_tag(f[0] as usize);
                let step = self.opt.step + 1;
                bail!(
                    "anomaly: {what} holds a non-finite value (element {}) at optimizer step {step} (epoch {}); training stopped",
                    f[1] as usize,
                    self.epoch + 1
                );
            }
        }
        self.last_run = Some(StepRun::PerOp { why: "anomaly detection checks every op".into() });
        Ok(())
    }

    /// After the backward pass: the non-finite check, then the optimizer step.
    fn finish_step(&mut self) -> Result<()> {
        // Record (on the device) the first step whose gradients hold a NaN or ±∞.
        let check = GradCheck { flag: self.metrics.slice(2, 2), tag: (self.opt.step + 1) as f32 };
        if self.dev.is_gpu() && self.clip.is_none() {
            // Nothing is read back inside an epoch on a GPU, so the check rides in the step's
            // own pass (one dispatch that reads the gradients once).
            self.opt.step_checked(&mut self.dev, &self.model.arena, check)?;
            return self.dev.flush();
        }
        self.dev.find_nonfinite(self.model.arena.grads, check.flag, check.tag);
        if !self.dev.is_gpu() {
            // On the CPU the check costs nothing to read: stop before the bad update is applied.
            self.check_finite()?;
        }
        match self.clip {
            Some(GradClip::Norm(max_norm)) => {
                self.model.arena.clip_grad_norm(&mut self.dev, max_norm)?.release(&mut self.dev)
            }
            Some(GradClip::Value(v)) => self.model.arena.clip_grad_value(&mut self.dev, v)?,
            None => {}
        }
        self.opt.step(&mut self.dev, &self.model.arena)?;
        self.dev.flush()
    }

    /// The next epoch's order of the training rows, uploaded as a device index buffer.
    pub fn epoch_order(&mut self) -> Result<ByteBuffer> {
        let order = self.shuffle.epoch_order(self.train.rows);
        self.dev.upload_bytes(&index_bytes(&order))
    }

    /// The training loss summed over the rows seen since the last epoch report (a readback).
    pub fn loss_sum(&mut self) -> Result<f64> {
        Ok(self.dev.read(self.metrics)?[0] as f64)
    }

    /// Fail, naming the step and the parameter tensor, if a non-finite gradient was recorded.
    pub fn check_finite(&mut self) -> Result<()> {
        self.read_metrics().map(|_| ())
    }

    /// The metrics buffer in one readback, failing if a non-finite gradient was recorded.
    pub(crate) fn read_metrics(&mut self) -> Result<Vec<f32>> {
        wait(self.read_metrics_async())
    }

    /// [`Trainer::read_metrics`] as a future (for a browser's WebGPU device).
    async fn read_metrics_async(&mut self) -> Result<Vec<f32>> {
        let m = self.dev.read_async(self.metrics).await?;
        if m[2] < 0.0 {
            return Ok(m);
        }
        let (step, at) = (m[2] as u64, m[3] as usize);
        let name = self.model.arena.entry_at(at);
        let steps = self.steps_per_epoch() as u64;
        let first_step = step - 1;
        bail!(said![
            format!(
                "non-finite gradient (NaN or ±inf) in {} at epoch {}, step {} of {steps} (optimizer step {step}); training stopped{}. Try a smaller ",
                name.map_or_else(|| format!("element {at}"), |e| format!("{} (element {})", e.name, at - e.offset)),
                first_step / steps + 1,
                first_step % steps + 1,
                if self.checkpoint.is_some() { ", the last checkpoint is kept" } else { "" }
            ),
            Setting::Lr
        ])
    }

    /// Read and reset the device-side [Σ loss, correct] pair.
    async fn take_metrics(&mut self) -> Result<(f64, f64)> {
        let m = self.read_metrics_async().await?;
        self.dev.fill(self.metrics.slice(0, 2), 0.0);
        Ok((m[0] as f64, m[1] as f64))
    }

    /// Train one epoch; `progress` is called every `progress_every` steps with (step, steps,
    /// running mean loss) (that reads the device's loss sum back).
    pub fn train_epoch(
        &mut self,
        progress: impl FnMut(usize, usize, f64),
        progress_every: usize,
    ) -> Result<(f64, f64, f64)> {
        wait(self.epoch_reporting(progress, progress_every))
    }

    /// [`Trainer::train_epoch`] as a future, without progress reports: the steps are issued
    /// without a readback and the epoch's metrics are awaited once (a browser's WebGPU device).
    pub async fn train_epoch_async(&mut self) -> Result<(f64, f64, f64)> {
        self.epoch_reporting(|_, _, _| {}, 0).await
    }

    /// One epoch: (mean loss, accuracy, seconds). Progress reports and mid-epoch checkpoints
    /// wait for their readbacks, so a browser runs it with neither.
    async fn epoch_reporting(
        &mut self,
        mut progress: impl FnMut(usize, usize, f64),
        progress_every: usize,
    ) -> Result<(f64, f64, f64)> {
        let start = Instant::now();
        // A resumed checkpoint taken mid-epoch rebuilds this epoch's order from the RNG state
        // saved at the epoch's start and continues after the steps already taken.
        if self.step_in_epoch == 0 {
            self.epoch_shuffle = self.shuffle.clone();
        } else {
            self.shuffle = self.epoch_shuffle.clone();
        }
        let order_buf = self.epoch_order()?;
        let steps = self.steps_per_epoch();
        let bs = self.config.batch_size;
        for s in self.step_in_epoch..steps {
            let from = s * bs;
            let count = bs.min(self.train.rows - from);
            self.step(order_buf, from, count)?;
            self.step_in_epoch = s + 1;
            if progress_every > 0 && (s + 1) % progress_every == 0 && s + 1 < steps {
                let m = self.read_metrics()?;
                progress(s + 1, steps, m[0] as f64 / ((s + 1) * bs) as f64);
            }
            if let Some((path, every)) = self.checkpoint.clone() {
                if every > 0 && self.opt.step.is_multiple_of(every) && s + 1 < steps {
                    self.save_checkpoint(&path)?;
                }
            }
        }
        self.step_in_epoch = 0;
        let (loss, correct) = self.take_metrics().await?;
        self.dev.free_bytes(order_buf);
        self.epoch += 1;
        let n = self.train.rows as f64;
        if !loss.is_finite() {
            bail!(said![
                format!("training diverged in epoch {}: the loss is {loss} (try a smaller ", self.epoch),
                Setting::Lr,
                ")"
            ]);
        }
        Ok((loss / n, correct / n, start.elapsed().as_secs_f64()))
    }

    /// Mean loss and accuracy on the test split, with the parameters in the optimizer's eval
    /// mode (Schedule-Free's x; the same parameters for every other optimizer), back in train
    /// mode after.
    pub fn evaluate(&mut self) -> Result<(f64, f64)> {
        wait(self.evaluate_async())
    }

    /// [`Trainer::evaluate`] as a future (for a browser's WebGPU device).
    pub async fn evaluate_async(&mut self) -> Result<(f64, f64)> {
        self.opt.eval(&mut self.dev, &self.model.arena)?;
        let result = self.evaluate_test().await;
        self.opt.train(&mut self.dev, &self.model.arena)?;
        result
    }

    async fn evaluate_test(&mut self) -> Result<(f64, f64)> {
        let rows = self.test.rows;
        let mut from = 0;
        while from < rows {
            let count = self.config.eval_batch.min(rows - from);
            let mut tape = Tape::new(&mut self.dev);
            let (x, y) = Self::gather(&mut tape, self.row_len, &self.test, self.test_order, from, count)?;
            let logits = self.model.forward_no_grad(&mut tape, x)?;
            tape.softmax_ce(logits, y, Some(self.metrics.slice(0, 2)))?;
            drop(tape);
            from += count;
        }
        let (loss, correct) = self.take_metrics().await?;
        Ok((loss / rows as f64, correct / rows as f64))
    }

    /// Train one epoch and evaluate.
    pub fn run_epoch(
        &mut self,
        progress: impl FnMut(usize, usize, f64),
        progress_every: usize,
    ) -> Result<EpochMetrics> {
        let (train_loss, train_accuracy, seconds) = self.train_epoch(progress, progress_every)?;
        let (test_loss, test_accuracy) = self.evaluate()?;
        if let Some((path, _)) = self.checkpoint.clone() {
            self.save_checkpoint(&path)?;
        }
        Ok(EpochMetrics { epoch: self.epoch, train_loss, train_accuracy, test_loss, test_accuracy, seconds })
    }

    /// [`Trainer::run_epoch`] as a future: two readbacks, both awaited (for a browser's WebGPU
    /// device). It saves no checkpoints: a page has no files.
    pub async fn run_epoch_async(&mut self) -> Result<EpochMetrics> {
        ensure!(self.checkpoint.is_none(), "run_epoch_async saves no checkpoints: use run_epoch to train with them");
        let (train_loss, train_accuracy, seconds) = self.train_epoch_async().await?;
        let (test_loss, test_accuracy) = self.evaluate_async().await?;
        Ok(EpochMetrics { epoch: self.epoch, train_loss, train_accuracy, test_loss, test_accuracy, seconds })
    }

    pub fn counters(&self) -> Counters {
        self.dev.counters()
    }
}

/// The model of `sizes` and the epochs' row order, drawn as PyTorch's loop draws them:
/// `torch.manual_seed(seed)`, then the model's initialisation, then the shuffle's generator
/// (its own seeded one for `randperm`, the global one after the model for `dataloader`).
pub(crate) fn seeded_model(dev: &mut Device, sizes: &[usize], config: &TrainConfig) -> Result<(Mlp, Shuffle)> {
    let mut rng = TorchGenerator::new(config.seed);
    let model = Mlp::new(dev, sizes, config.act, &mut rng)?;
    let shuffle = match config.shuffle {
        ShuffleOrder::Randperm => Shuffle::Randperm(TorchGenerator::new(config.seed)),
        ShuffleOrder::DataLoader => Shuffle::DataLoader(rng),
    };
    Ok((model, shuffle))
}

/// Where each epoch's order of the training rows comes from.
#[derive(Clone)]
pub(crate) enum Shuffle {
    /// [`ShuffleOrder::Randperm`]: its own generator, seeded with the seed.
    Randperm(TorchGenerator),
    /// [`ShuffleOrder::DataLoader`]: the global generator, after the model's initialisation.
    DataLoader(TorchGenerator),
    /// xoshiro256** and a backward Fisher–Yates: what format-1 checkpoints were made with.
    Xoshiro(Rng),
}

impl Shuffle {
    pub(crate) fn order(&self) -> Option<ShuffleOrder> {
        match self {
            Shuffle::Randperm(_) => Some(ShuffleOrder::Randperm),
            Shuffle::DataLoader(_) => Some(ShuffleOrder::DataLoader),
            Shuffle::Xoshiro(_) => None,
        }
    }

    pub(crate) fn epoch_order(&mut self, rows: usize) -> Vec<u32> {
        match self {
            Shuffle::Randperm(g) => g.randperm(rows as u32),
            Shuffle::DataLoader(g) => g.dataloader_epoch_order(rows as u32),
            Shuffle::Xoshiro(rng) => {
                let mut order: Vec<u32> = (0..rows as u32).collect();
                rng.shuffle(&mut order);
                order
            }
        }
    }
}
