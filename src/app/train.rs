//! The training loop: the dataset is uploaded once as bytes, each mini-batch is gathered by
//! index on the device, and forward, loss, backward and the optimizer step are issued without
//! reading anything back; loss and accuracy accumulate on the device and are read once per
//! epoch (and at progress updates).

use crate::app::checkpoint::{self, NamedTensor};
pub use crate::app::metrics::EpochMetrics;
use crate::autograd::Tape;
use crate::backend::{Act, ByteBuffer, Counters, Device, Gather};
use crate::data::{Dataset, Split};
use crate::nn::Mlp;
use crate::optim::{OptimConfig, Optimizer, Schedule};
use crate::rng::Rng;
use crate::tensor::{Tensor, View};
use crate::torch_rng::TorchGenerator;
use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
        ensure!(self.epochs > 0, "epochs must be at least 1");
        ensure!(self.batch_size > 0, "batch_size must be at least 1");
        ensure!(self.eval_batch > 0, "the evaluation batch must be at least 1");
        ensure!(
            !self.hidden.is_empty() && self.hidden.iter().all(|&h| h > 0),
            "hidden needs one or more sizes > 0, e.g. 128,128"
        );
        self.optimizer.validate()?;
        self.schedule.validate()
    }
}

/// The order of the training rows each epoch, as one of two PyTorch loops draws it after
/// `torch.manual_seed(seed)` and building the model (see [`crate::torch_rng`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShuffleOrder {
    /// `g = torch.Generator().manual_seed(seed)`, then `torch.randperm(n, generator=g)` each
    /// epoch: a loop over in-memory tensors (and the figures the project's issues quote).
    Randperm,
    /// `DataLoader(train, batch_size=B, shuffle=True)`: each epoch seeds a fresh generator from
    /// the global one.
    DataLoader,
}

impl ShuffleOrder {
    pub fn parse(s: &str) -> Result<ShuffleOrder> {
        match s {
            "randperm" => Ok(ShuffleOrder::Randperm),
            "dataloader" => Ok(ShuffleOrder::DataLoader),
            _ => bail!("unknown shuffle order '{s}': use randperm or dataloader"),
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
struct DeviceSplit {
    images: ByteBuffer,
    labels: ByteBuffer,
    rows: usize,
}

impl DeviceSplit {
    fn upload(dev: &mut Device, s: &Split) -> Result<DeviceSplit> {
        Ok(DeviceSplit { images: dev.upload_bytes(&s.images)?, labels: dev.upload_bytes(&s.labels)?, rows: s.rows })
    }
}

fn index_bytes(idx: &[u32]) -> Vec<u8> {
    idx.iter().flat_map(|i| i.to_le_bytes()).collect()
}

pub struct Trainer {
    /// The dataset's name, recorded in checkpoints.
    pub dataset: String,
    /// Where to save checkpoints, and every how many optimizer steps (0: at epoch ends only).
    pub checkpoint: Option<(PathBuf, u64)>,
    pub dev: Device,
    pub model: Mlp,
    pub opt: Optimizer,
    pub config: TrainConfig,
    /// Where the next epoch's order comes from.
    shuffle: Shuffle,
    pub epoch: usize,
    row_len: usize,
    train: DeviceSplit,
    test: DeviceSplit,
    test_order: ByteBuffer,
    /// `shuffle` as it was before this epoch's order was drawn, so a mid-epoch checkpoint can
    /// rebuild the order.
    epoch_shuffle: Shuffle,
    /// Steps of the current epoch already taken.
    step_in_epoch: usize,
    /// On the device, read back together: [Σ loss, correct] accumulated over the batches since
    /// the last report, then [optimizer step, element] of the first non-finite gradient seen,
    /// or [-1, -1].
    metrics: View,
    /// With anomaly detection: [tag, element] of the first non-finite op output or gradient.
    anomaly: Option<View>,
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
        // torch.manual_seed(seed), then the model.
        let mut rng = TorchGenerator::new(config.seed);
        let model = Mlp::new(&mut dev, &sizes, config.act, &mut rng)?;
        let shuffle = match config.shuffle {
            ShuffleOrder::Randperm => Shuffle::Randperm(TorchGenerator::new(config.seed)),
            ShuffleOrder::DataLoader => Shuffle::DataLoader(rng),
        };
        let opt = Optimizer::new(&mut dev, &model.arena, config.optimizer.clone(), config.schedule.clone())?;
        let train = DeviceSplit::upload(&mut dev, &data.train)?;
        let test = DeviceSplit::upload(&mut dev, &data.test)?;
        let order: Vec<u32> = (0..data.test.rows as u32).collect();
        let test_order = dev.upload_bytes(&index_bytes(&order))?;
        let metrics = dev.alloc_zeroed(4)?;
        dev.fill(metrics.slice(2, 2), -1.0);
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
        })
    }

    /// Refuse a model and dataset the device cannot hold, before allocating any of it:
    /// parameters, gradients and optimizer state, the dataset's bytes, and on the CPU the
    /// host copies the initial weights are drawn into.
    fn check_fits(dev: &Device, data: &Dataset, sizes: &[usize], opt: &OptimConfig) -> Result<()> {
        let name = sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-");
        let what = format!("a {name} model with {}", opt.name);
        let n = Mlp::arena_len(sizes).map_or(u64::MAX / 64, |n| n as u64);
        let buffers = 2 + opt.state_names().len() as u64;
        let staging = if dev.is_gpu() { 0 } else { 8 * n };
        let data_bytes = (data.train.images.len() + data.test.images.len() + 4 * data.test.rows) as u64;
        let total = (4 * n).saturating_mul(buffers).saturating_add(staging).saturating_add(data_bytes);
        dev.check_fits(&what, total, 4 * n, "reduce the hidden sizes")
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.train.rows.div_ceil(self.config.batch_size)
    }

    /// Gather rows `order[start..start + count]` of a split into fresh x and y buffers.
    fn gather(
        dev: &mut Device,
        row_len: usize,
        split: &DeviceSplit,
        order: ByteBuffer,
        start: usize,
        count: usize,
    ) -> Result<(View, View)> {
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
        Ok((x, y))
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
        {
            let mut tape = Tape::new(&mut self.dev);
            tape.set_anomaly(self.anomaly);
            let (x, y) = Self::gather(tape.device(), self.row_len, &self.train, order, start, count)?;
            tape.adopt(y);
            let xv = tape.input_owned(Tensor::new(x, &[count, self.row_len]));
            let logits = self.model.forward(&mut tape, xv)?;
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
        }
        // Record (on the device) the first step whose gradients hold a NaN or ±∞.
        self.dev.find_nonfinite(self.model.arena.grads, self.metrics.slice(2, 2), (self.opt.step + 1) as f32);
        if !self.dev.is_gpu() {
            // On the CPU the check costs nothing to read: stop before the bad update is applied.
            self.check_finite()?;
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
    fn read_metrics(&mut self) -> Result<Vec<f32>> {
        let m = self.dev.read(self.metrics)?;
        if m[2] < 0.0 {
            return Ok(m);
        }
        let (step, at) = (m[2] as u64, m[3] as usize);
        let name = self.model.arena.entry_at(at);
        let steps = self.steps_per_epoch() as u64;
        let first_step = step - 1;
        bail!(
            "non-finite gradient (NaN or ±inf) in {} at epoch {}, step {} of {steps} (optimizer step {step}); training stopped{}. Try a smaller lr",
            name.map_or_else(|| format!("element {at}"), |e| format!("{} (element {})", e.name, at - e.offset)),
            first_step / steps + 1,
            first_step % steps + 1,
            if self.checkpoint.is_some() { ", the last checkpoint is kept" } else { "" }
        )
    }

    /// Read and reset the device-side [Σ loss, correct] pair.
    fn take_metrics(&mut self) -> Result<(f64, f64)> {
        let m = self.read_metrics()?;
        self.dev.fill(self.metrics.slice(0, 2), 0.0);
        Ok((m[0] as f64, m[1] as f64))
    }

    /// Train one epoch; `progress` is called every `progress_every` steps with (step, steps,
    /// running mean loss) (that reads the device's loss sum back).
    pub fn train_epoch(
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
        let (loss, correct) = self.take_metrics()?;
        self.dev.free_bytes(order_buf);
        self.epoch += 1;
        let n = self.train.rows as f64;
        if !loss.is_finite() {
            bail!("training diverged in epoch {}: the loss is {loss} (try a smaller lr)", self.epoch);
        }
        Ok((loss / n, correct / n, start.elapsed().as_secs_f64()))
    }

    /// Mean loss and accuracy on the test split.
    pub fn evaluate(&mut self) -> Result<(f64, f64)> {
        let rows = self.test.rows;
        let mut from = 0;
        while from < rows {
            let count = self.config.eval_batch.min(rows - from);
            let mut tape = Tape::new(&mut self.dev);
            let (x, y) = Self::gather(tape.device(), self.row_len, &self.test, self.test_order, from, count)?;
            tape.adopt(y);
            let xv = tape.input_owned(Tensor::new(x, &[count, self.row_len]));
            let logits = self.model.forward_no_grad(&mut tape, xv)?;
            tape.softmax_ce(logits, y, Some(self.metrics.slice(0, 2)))?;
            drop(tape);
            from += count;
        }
        let (loss, correct) = self.take_metrics()?;
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

    pub fn counters(&self) -> Counters {
        self.dev.counters()
    }

    /// Everything a bit-exact resume needs, as safetensors tensors and metadata: parameters
    /// under PyTorch's names, every optimizer state slot, the step count (which is also the
    /// schedule's position), the RNG, the epoch and step within it, and the configuration.
    pub fn checkpoint_contents(&mut self) -> Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
        let m = self.read_metrics()?;
        let params = self.dev.read(self.model.arena.params)?;
        if let Some(i) = params.iter().position(|v| !v.is_finite()) {
            let name = self.model.arena.entry_at(i);
            bail!(
                "parameter {} holds a non-finite value after step {}: not saving a checkpoint (the last one is kept); try a smaller lr",
                name.map_or("?", |e| e.name.as_str()),
                self.opt.step
            );
        }
        let state = self.opt.read_state(&mut self.dev)?;
        let mut tensors = Vec::new();
        for e in &self.model.arena.entries {
            tensors.push(NamedTensor {
                name: e.name.clone(),
                shape: e.shape.clone(),
                data: params[e.range()].to_vec(),
            });
        }
        for (slot, data) in &state {
            for e in &self.model.arena.entries {
                tensors.push(NamedTensor {
                    name: format!("optimizer.{slot}.{}", e.name),
                    shape: e.shape.clone(),
                    data: data[e.range()].to_vec(),
                });
            }
        }
        let c = &self.config;
        let mut meta = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            meta.insert(k.to_string(), v);
        };
        put("format", self.shuffle.format().into());
        put("dataset", self.dataset.clone());
        put("sizes", join(&self.model.sizes));
        put("activation", c.act.name().into());
        put("batch_size", c.batch_size.to_string());
        put("seed", c.seed.to_string());
        if let Some(order) = self.shuffle.order() {
            put("shuffle", order.name().into());
        }
        put("optimizer", self.opt.config.to_json().to_string());
        put("schedule", self.opt.schedule.spec());
        put("optimizer_step", self.opt.step.to_string());
        put("epoch", self.epoch.to_string());
        put("step_in_epoch", self.step_in_epoch.to_string());
        self.shuffle.save("rng", &mut put);
        self.epoch_shuffle.save("epoch_rng", &mut put);
        put("metrics", format!("{:?},{:?}", m[0], m[1]));
        Ok((tensors, meta))
    }

    /// Write a checkpoint atomically (see [`crate::app::checkpoint`]).
    pub fn save_checkpoint(&mut self, path: &Path) -> Result<()> {
        let (tensors, meta) = self.checkpoint_contents()?;
        checkpoint::write_atomic(path, &checkpoint::encode(&tensors, &meta))
            .with_context(|| format!("saving the checkpoint {}", path.display()))
    }

    /// Continue from a checkpoint made by a trainer of the same model and data.
    pub fn restore(&mut self, tensors: &[NamedTensor], meta: &BTreeMap<String, String>, what: &str) -> Result<()> {
        let meta = Meta::new(meta, what)?;
        let sizes = join(&self.model.sizes);
        ensure!(
            meta.get("dataset")? == &self.dataset && meta.get("sizes")? == &sizes,
            "{what}: made for {} with layers {}, not {} with layers {sizes}",
            meta.get("dataset")?,
            meta.get("sizes")?,
            self.dataset
        );
        let find = |name: &str| -> Result<&NamedTensor> {
            tensors.iter().find(|t| t.name == name).with_context(|| format!("{what}: tensor {name} is missing"))
        };
        let n = self.model.arena.len();
        let mut params = vec![0f32; n];
        for e in &self.model.arena.entries {
            let t = find(&e.name)?;
            ensure!(t.shape == e.shape, "{what}: {} has shape {:?}, the model {:?}", e.name, t.shape, e.shape);
            params[e.range()].copy_from_slice(&t.data);
        }
        self.dev.write(self.model.arena.params, &params)?;
        for (i, slot) in self.opt.config.state_names().into_iter().enumerate() {
            let mut data = vec![self.opt.config.state_init(); n];
            for e in &self.model.arena.entries {
                let t = find(&format!("optimizer.{slot}.{}", e.name))?;
                ensure!(t.data.len() == e.len(), "{what}: optimizer.{slot}.{} has the wrong size", e.name);
                data[e.range()].copy_from_slice(&t.data);
            }
            self.dev.write(self.opt.slot(i), &data)?;
        }
        self.opt.step = meta.num("optimizer_step")?;
        self.epoch = meta.num("epoch")?;
        self.step_in_epoch = meta.num("step_in_epoch")?;
        ensure!(self.step_in_epoch < self.steps_per_epoch(), "{what}: step_in_epoch is past the epoch's end");
        let (params, rows, begun) = (self.model.arena.count(), self.train.rows, self.epoch + 1);
        self.shuffle = Shuffle::restore(&meta, "rng", &self.config, params, rows, begun)?;
        self.epoch_shuffle = Shuffle::restore(&meta, "epoch_rng", &self.config, params, rows, begun)?;
        let m: Vec<f32> = meta.list("metrics", 2)?;
        self.dev.write(self.metrics.slice(0, 2), &m)?;
        self.dev.fill(self.metrics.slice(2, 2), -1.0);
        Ok(())
    }
}

/// The `format` entry of a training checkpoint's metadata. Format 2 stores the shuffle
/// generator's position as `rng_draws` / `epoch_rng_draws`; format 1 (xoshiro states in `rng` /
/// `epoch_rng`) still restores.
pub const CHECKPOINT_FORMAT: &str = "descent-checkpoint-2";
const CHECKPOINT_FORMAT_1: &str = "descent-checkpoint-1";

/// Where each epoch's order of the training rows comes from.
#[derive(Clone)]
enum Shuffle {
    /// [`ShuffleOrder::Randperm`]: its own generator, seeded with the seed.
    Randperm(TorchGenerator),
    /// [`ShuffleOrder::DataLoader`]: the global generator, after the model's initialisation.
    DataLoader(TorchGenerator),
    /// xoshiro256** and a backward Fisher–Yates: what format-1 checkpoints were made with.
    Xoshiro(Rng),
}

impl Shuffle {
    fn order(&self) -> Option<ShuffleOrder> {
        match self {
            Shuffle::Randperm(_) => Some(ShuffleOrder::Randperm),
            Shuffle::DataLoader(_) => Some(ShuffleOrder::DataLoader),
            Shuffle::Xoshiro(_) => None,
        }
    }

    /// The checkpoint format that stores this generator.
    fn format(&self) -> &'static str {
        match self {
            Shuffle::Xoshiro(_) => CHECKPOINT_FORMAT_1,
            _ => CHECKPOINT_FORMAT,
        }
    }

    fn epoch_order(&mut self, rows: usize) -> Vec<u32> {
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

    /// Into checkpoint metadata under `key` (format 1) or `key_draws` (format 2).
    fn save(&self, key: &str, put: &mut impl FnMut(&str, String)) {
        match self {
            Shuffle::Randperm(g) | Shuffle::DataLoader(g) => put(&format!("{key}_draws"), g.draws().to_string()),
            Shuffle::Xoshiro(rng) => put(key, join(&rng.state)),
        }
    }

    /// From checkpoint metadata. A format-2 position must be where the generator stands after
    /// at most `epochs` epochs: `rows - 1` draws per epoch for randperm; the model's
    /// initialisation (`params` draws) plus four per epoch for the DataLoader.
    fn restore(
        meta: &Meta,
        key: &str,
        config: &TrainConfig,
        params: usize,
        rows: usize,
        epochs: usize,
    ) -> Result<Shuffle> {
        if meta.get("format")? == CHECKPOINT_FORMAT_1 {
            let state: [u64; 4] = meta.list(key, 4)?.try_into().expect("four numbers");
            return Ok(Shuffle::Xoshiro(Rng { state }));
        }
        let key = format!("{key}_draws");
        let draws: u64 = meta.num(&key)?;
        let (start, per_epoch) = match config.shuffle {
            ShuffleOrder::Randperm => (0, rows.saturating_sub(1).max(1) as u64),
            ShuffleOrder::DataLoader => (params as u64, 4),
        };
        ensure!(
            draws >= start && (draws - start).is_multiple_of(per_epoch) && (draws - start) / per_epoch <= epochs as u64,
            "{}: '{key}' ({draws}) is not a position of this model's {} shuffle after at most {epochs} epochs",
            meta.what,
            config.shuffle.name()
        );
        let g = TorchGenerator::at(config.seed, draws);
        Ok(match config.shuffle {
            ShuffleOrder::Randperm => Shuffle::Randperm(g),
            ShuffleOrder::DataLoader => Shuffle::DataLoader(g),
        })
    }
}

/// The training configuration a checkpoint was made with, and its dataset's name.
pub fn config_from_checkpoint(
    meta: &BTreeMap<String, String>,
    epochs: usize,
    what: &str,
) -> Result<(TrainConfig, String)> {
    let meta = Meta::new(meta, what)?;
    let sizes: Vec<usize> = meta.list("sizes", 0)?;
    ensure!(sizes.len() >= 2, "{what}: 'sizes' needs an input and an output size");
    let optimizer: serde_json::Value =
        serde_json::from_str(meta.get("optimizer")?).with_context(|| format!("{what}: 'optimizer' is not JSON"))?;
    let config = TrainConfig {
        epochs,
        batch_size: meta.num("batch_size")?,
        seed: meta.num("seed")?,
        // Format 1 predates the choice; its checkpoints shuffle with xoshiro (see `restore`).
        shuffle: if meta.get("format")? == CHECKPOINT_FORMAT_1 {
            ShuffleOrder::Randperm
        } else {
            ShuffleOrder::parse(meta.get("shuffle")?).with_context(|| format!("{what}: 'shuffle'"))?
        },
        hidden: sizes[1..sizes.len() - 1].to_vec(),
        act: Act::parse(meta.get("activation")?)?,
        optimizer: OptimConfig::from_json(&optimizer, "optimizer")?,
        schedule: Schedule::parse(meta.get("schedule")?)?,
        eval_batch: 1000,
    };
    config.validate()?;
    Ok((config, meta.get("dataset")?.clone()))
}

/// Numbers as a checkpoint's metadata stores them: comma-separated.
fn join<T: std::fmt::Display>(xs: &[T]) -> String {
    xs.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
}

/// A training checkpoint's metadata, read with errors that name the file and the entry.
struct Meta<'a> {
    map: &'a BTreeMap<String, String>,
    what: &'a str,
}

impl<'a> Meta<'a> {
    /// Fails unless the metadata says it is a descent training checkpoint.
    fn new(map: &'a BTreeMap<String, String>, what: &'a str) -> Result<Meta<'a>> {
        let meta = Meta { map, what };
        let format = meta.get("format")?;
        ensure!(
            format == CHECKPOINT_FORMAT || format == CHECKPOINT_FORMAT_1,
            "{what}: not a descent training checkpoint ({format})"
        );
        Ok(meta)
    }

    fn get(&self, key: &str) -> Result<&'a String> {
        self.map.get(key).with_context(|| format!("{}: the checkpoint has no '{key}' entry", self.what))
    }

    fn num<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        self.get(key)?.parse().ok().with_context(|| format!("{}: '{key}' is not a whole number", self.what))
    }

    /// A comma-separated list of `len` numbers (any length when `len` is 0).
    fn list<T: std::str::FromStr>(&self, key: &str, len: usize) -> Result<Vec<T>> {
        let v: Option<Vec<T>> = self.get(key)?.split(',').map(|x| x.parse().ok()).collect();
        match v {
            Some(v) if len == 0 || v.len() == len => Ok(v),
            _ if len == 0 => bail!("{}: '{key}' is not a list of numbers", self.what),
            _ => bail!("{}: '{key}' is not {len} numbers", self.what),
        }
    }
}
