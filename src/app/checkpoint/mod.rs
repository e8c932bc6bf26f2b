//! The training checkpoint: what [`Trainer`] saves and restores for a bit-exact resume, its
//! metadata entries, and the migration from format 1 (xoshiro shuffle states).
//!
//! The file is a [`StateDict`]: the model's tensors from [`ParamArena::state_dict`]
//! (`nn.Sequential`'s names), the optimizer's from [`Optimizer::state_dict`]
//! (`optimizer.<slot>.<param>`, at the width it keeps them, with its step count), and the
//! trainer's entries (data, sizes, shuffle position, epoch, metrics). The safetensors codec
//! and the atomic write live in [`crate::state_dict`], the one implementation the library's
//! save and load use too; they are re-exported here.
//!
//! [`ParamArena::state_dict`]: crate::nn::ParamArena::state_dict
//! [`Optimizer::state_dict`]: crate::optim::Optimizer::state_dict

mod state;

pub use state::export_weights;

use crate::app::train::{GradClip, Shuffle, ShuffleOrder, TrainConfig, Trainer};
use crate::backend::Act;
use crate::message::Setting;
use crate::optim::{Mode, OptimConfig, Schedule};
use crate::rng::Rng;
use crate::said;
use crate::torch_rng::TorchGenerator;
use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub use crate::data::write_atomic;
pub use crate::state_dict::{decode, encode, read, NamedTensor, StateDict, Stored};

// The training checkpoint: what `Trainer` saves and restores, and the format-1 migration.

/// The `format` entry of a training checkpoint's metadata. Format 2 stores the shuffle
/// generator's position as `rng_draws` / `epoch_rng_draws`; format 1 (xoshiro states in `rng` /
/// `epoch_rng`) still restores.
pub const CHECKPOINT_FORMAT: &str = "descent-checkpoint-2";
const CHECKPOINT_FORMAT_1: &str = "descent-checkpoint-1";

impl Trainer {
    /// Everything a bit-exact resume needs, as safetensors tensors and metadata: parameters
    /// under PyTorch's names, every optimizer state slot, the step count (which is also the
    /// schedule's position), the RNG, the epoch and step within it, and the configuration.
    pub fn checkpoint_contents(&mut self) -> Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
        let m = self.read_metrics()?;
        let mut dict = self.model.arena.state_dict(&mut self.dev)?;
        if let Some(t) = dict.tensors.iter().find(|t| t.data.iter().any(|v| !v.is_finite())) {
            bail!(said![
                format!(
                    "parameter {} holds a non-finite value after step {}: not saving a checkpoint (the last one is kept); try a smaller ",
                    t.name,
                    self.opt.step
                ),
                Setting::Lr
            ]);
        }
        // The optimizer's entries: its state tensors, `optimizer` (the configuration as JSON),
        // `schedule`, `optimizer_step` and, for Schedule-Free, `optimizer_mode`.
        dict.extend(self.opt.state_dict(&mut self.dev, &self.model.arena)?)?;
        let c = &self.config;
        let mut put = |k: &str, v: String| {
            dict.metadata.insert(k.to_string(), v);
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
        if let Some(clip) = self.grad_clip() {
            put("grad_clip", clip.spec());
        }
        put("epoch", self.epoch.to_string());
        put("step_in_epoch", self.step_in_epoch.to_string());
        self.shuffle.save("rng", &mut put);
        self.epoch_shuffle.save("epoch_rng", &mut put);
        put("metrics", format!("{:?},{:?}", m[0], m[1]));
        Ok((dict.tensors, dict.metadata))
    }

    /// Write a checkpoint atomically (see this module's docs).
    pub fn save_checkpoint(&mut self, path: &Path) -> Result<()> {
        let (tensors, meta) = self.checkpoint_contents()?;
        write_atomic(path, &encode(&tensors, &meta)?)
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
        // The model and the optimizer each take their own tensors, strictly (a missing, extra or
        // mis-shaped one names itself), with the file's name in front.
        let dict = StateDict { tensors: tensors.to_vec(), metadata: meta.map.clone() };
        self.model.arena.load_state_dict(&mut self.dev, &dict).with_context(|| what.to_string())?;
        self.opt.load_state_dict(&mut self.dev, &self.model.arena, &dict).with_context(|| what.to_string())?;
        // The clipping the run was made with (none before the entry existed, or when unset).
        let clip =
            meta.map.get("grad_clip").map(|s| GradClip::parse(s)).transpose().with_context(|| what.to_string())?;
        self.set_grad_clip(clip).with_context(|| what.to_string())?;
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

impl Shuffle {
    /// The checkpoint format that stores this generator.
    fn format(&self) -> &'static str {
        match self {
            Shuffle::Xoshiro(_) => CHECKPOINT_FORMAT_1,
            _ => CHECKPOINT_FORMAT,
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
