//! Checkpoints in the safetensors format, read and written with the `safetensors` crate: an
//! 8-byte little-endian header length, a JSON header (`{"NAME": {"dtype": "F32", "shape": […],
//! "data_offsets": [begin, end]}, …, "__metadata__": {string: string}}`), then the tensors'
//! bytes. PyTorch reads it with
//! `safetensors.torch.load_file`; the model's tensors carry `nn.Sequential`'s names (`0.weight`,
//! `0.bias`, `2.weight`, …), the optimizer's state `optimizer.<slot>.<param name>`.
//!
//! Files are written atomically: a temporary file in the same folder, fsync, rename over the
//! target, fsync of the folder. A crash at any instant leaves the old file or the new one.
//!
//! The training checkpoint lives here too: what [`Trainer`] saves and restores for a bit-exact
//! resume (tensors, optimizer state, step counts, the shuffle generator's position), its
//! metadata entries, and the migration from format 1 (xoshiro shuffle states).

mod state;

pub use state::export_weights;

use crate::app::train::{Shuffle, ShuffleOrder, TrainConfig, Trainer};
use crate::backend::quant::{bf16_from_f32, bf16_to_f32, TensorState};
use crate::backend::Act;
use crate::message::Setting;
use crate::optim::{Mode, OptimConfig, Schedule, StoredState};
use crate::rng::Rng;
use crate::said;
use crate::torch_rng::TorchGenerator;
use anyhow::{anyhow, bail, ensure, Context, Result};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A named tensor. Its values are held as f32 whatever the file stores (every bfloat16 and
/// u8 is exactly an f32); `dtype` says how the file stores them.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub dtype: Stored,
}

/// A tensor's dtype in the file: safetensors' F32, BF16 (optimizer state at 16 bits) or U8
/// (8-bit codes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stored {
    /// 32-bit floats.
    #[default]
    F32,
    /// bfloat16: the values must be exactly bfloat16s.
    Bf16,
    /// Bytes: the values must be whole numbers 0..=255.
    U8,
}

impl NamedTensor {
    /// An f32 tensor.
    pub fn f32(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> NamedTensor {
        NamedTensor { name: name.into(), shape, data, dtype: Stored::F32 }
    }

    /// The file's bytes for this tensor, or an error if a value is not of its dtype.
    fn bytes(&self) -> Result<(Dtype, Vec<u8>)> {
        Ok(match self.dtype {
            Stored::F32 => (Dtype::F32, self.data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            Stored::Bf16 => {
                let mut out = Vec::with_capacity(2 * self.data.len());
                for v in &self.data {
                    let b = v.to_bits();
                    ensure!(b & 0xFFFF == 0, "tensor {}: {v} is not a bfloat16", self.name);
                    out.extend_from_slice(&((b >> 16) as u16).to_le_bytes());
                }
                (Dtype::BF16, out)
            }
            Stored::U8 => {
                let mut out = Vec::with_capacity(self.data.len());
                for &v in &self.data {
                    ensure!(v.fract() == 0.0 && (0.0..=255.0).contains(&v), "tensor {}: {v} is not a byte", self.name);
                    out.push(v as u8);
                }
                (Dtype::U8, out)
            }
        })
    }
}

/// Serialize tensors and string metadata with the `safetensors` crate (the format's reference
/// implementation). The crate orders tensors by name; its header keeps `__metadata__` in a hash
/// map, so the header is rewritten with sorted keys: the same state always gives the same bytes.
pub fn encode(tensors: &[NamedTensor], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let bytes: Vec<(Dtype, Vec<u8>)> = tensors.iter().map(NamedTensor::bytes).collect::<Result<_>>()?;
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, (dtype, b))| {
            TensorView::new(*dtype, t.shape.clone(), b)
                .map(|v| (t.name.as_str(), v))
                .map_err(|e| anyhow!("tensor {}: {e}", t.name))
        })
        .collect::<Result<Vec<_>>>()?;
    let info: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let out = safetensors::serialize(views, (!info.is_empty()).then_some(info))?;
    // Canonical header: the same JSON with its keys sorted, padded to 8 bytes as before.
    let n = u64::from_le_bytes(out[..8].try_into().expect("8 bytes")) as usize;
    let header: Value = serde_json::from_slice(&out[8..8 + n])?;
    let mut text = header.to_string().into_bytes();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut file = Vec::with_capacity(8 + text.len() + out.len() - 8 - n);
    file.extend_from_slice(&(text.len() as u64).to_le_bytes());
    file.extend_from_slice(&text);
    file.extend_from_slice(&out[8 + n..]);
    Ok(file)
}

/// Parse and validate a safetensors file's bytes with the `safetensors` crate (header length,
/// JSON, offsets consistent with shapes, contiguous, covering the data exactly); F32, BF16
/// and U8 tensors, their values widened to f32. Tensors come back in offset order.
pub fn decode(bytes: &[u8], what: &str) -> Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
    let explain = |e: SafeTensorError| {
        match e {
        SafeTensorError::InvalidHeaderDeserialization(e) => anyhow!("{what}: the header is not valid JSON ({e})"),
        SafeTensorError::HeaderTooSmall | SafeTensorError::HeaderTooLarge | SafeTensorError::InvalidHeaderLength => {
            anyhow!("{what}: the header length does not fit the file ({} bytes); truncated or not safetensors", bytes.len())
        }
        SafeTensorError::MetadataIncompleteBuffer => anyhow!(
            "{what}: the tensors' data does not cover the file's {} bytes exactly (truncated, or bytes after the last tensor)",
            bytes.len()
        ),
        other => anyhow!("{what}: not a valid safetensors file: {other}"),
    }
    };
    // read_metadata parses the header and checks it against the whole buffer.
    let (n, header) = SafeTensors::read_metadata(bytes).map_err(explain)?;
    let data = &bytes[8 + n..];
    let metadata: BTreeMap<String, String> =
        header.metadata().as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    let infos = header.tensors();
    let mut tensors = Vec::new();
    for name in header.offset_keys() {
        let t = infos[&name];
        let (begin, end) = t.data_offsets;
        let raw = &data[begin..end];
        let (values, dtype) = match t.dtype {
            Dtype::F32 => {
                (raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect(), Stored::F32)
            }
            Dtype::BF16 => (
                raw.chunks_exact(2).map(|c| bf16_to_f32(u16::from_le_bytes(c.try_into().expect("2 bytes")))).collect(),
                Stored::Bf16,
            ),
            Dtype::U8 => (raw.iter().map(|&b| b as f32).collect(), Stored::U8),
            other => bail!("{what}: tensor {name} has dtype {other}; F32, BF16 and U8 are read"),
        };
        tensors.push(NamedTensor { name, shape: t.shape.clone(), data: values, dtype });
    }
    Ok((tensors, metadata))
}

pub use crate::data::write_atomic;

pub fn read(path: &Path) -> Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    decode(&bytes, &path.display().to_string())
}

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
        let params = self.dev.read(self.model.arena.params)?;
        if let Some(i) = params.iter().position(|v| !v.is_finite()) {
            let name = self.model.arena.entry_at(i);
            bail!(said![
                format!(
                    "parameter {} holds a non-finite value after step {}: not saving a checkpoint (the last one is kept); try a smaller ",
                    name.map_or("?", |e| e.name.as_str()),
                    self.opt.step
                ),
                Setting::Lr
            ]);
        }
        let mut tensors = Vec::new();
        for e in &self.model.arena.entries {
            tensors.push(NamedTensor::f32(e.name.clone(), e.shape.clone(), params[e.range()].to_vec()));
        }
        tensors.extend(self.state_tensors()?);
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
        // Which sequence the parameters above are, where the optimizer has two (Schedule-Free:
        // y in train mode, x in eval); every other optimizer's are the same in both.
        if let OptimConfig::SchedulefreeAdamw(_) = self.opt.config {
            put("optimizer_mode", self.opt.mode.name().into());
        }
        put("epoch", self.epoch.to_string());
        put("step_in_epoch", self.step_in_epoch.to_string());
        self.shuffle.save("rng", &mut put);
        self.epoch_shuffle.save("epoch_rng", &mut put);
        put("metrics", format!("{:?},{:?}", m[0], m[1]));
        Ok((tensors, meta))
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
        self.restore_state(tensors, what)?;
        self.opt.step = meta.num("optimizer_step")?;
        // Checkpoints before the key stored train-mode parameters (nothing else existed).
        self.opt.mode = match meta.map.get("optimizer_mode") {
            Some(name) => Mode::from_name(name).with_context(|| what.to_string())?,
            None => Mode::Train,
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let t = vec![
            NamedTensor::f32("0.weight", vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, f32::MIN_POSITIVE, 7.0]),
            NamedTensor::f32("0.bias", vec![2], vec![0.25, -0.5]),
            NamedTensor {
                name: "optimizer.exp_avg.0.bias".into(),
                shape: vec![2],
                data: vec![0.0, 255.0],
                dtype: Stored::U8,
            },
            NamedTensor {
                name: "optimizer.sum.0.bias".into(),
                shape: vec![2],
                data: vec![-2.5, 1.0],
                dtype: Stored::Bf16,
            },
        ];
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), "test".to_string());
        let b = encode(&t, &meta).unwrap();
        assert_eq!(b, encode(&t, &meta).unwrap(), "the same state gives the same bytes");
        let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        assert_eq!((8 + n) % 8, 0, "data is 8-byte aligned");
        let (back, m) = decode(&b, "t").unwrap();
        // The crate stores tensors widest dtype first (keeping each aligned), then by name;
        // decode returns them in file order, each with its dtype.
        let width = |t: &NamedTensor| match t.dtype {
            Stored::F32 => 4,
            Stored::Bf16 => 2,
            Stored::U8 => 1,
        };
        let mut in_file = t.clone();
        in_file.sort_by(|a, b| width(b).cmp(&width(a)).then(a.name.cmp(&b.name)));
        assert_eq!(back, in_file);
        // Values that are not of their dtype are an error, not a silent conversion.
        let mut not_bf16 = t.clone();
        not_bf16[3].data[0] = 1.0 + f32::EPSILON;
        assert!(format!("{:#}", encode(&not_bf16, &meta).unwrap_err()).contains("is not a bfloat16"));
        let mut not_byte = t.clone();
        not_byte[2].data[1] = 256.0;
        assert!(format!("{:#}", encode(&not_byte, &meta).unwrap_err()).contains("is not a byte"));
        assert_eq!(m, meta);
        assert!(format!("{:#}", decode(&b[..b.len() - 1], "t").unwrap_err()).contains("truncated"));
        assert!(decode(&b[..4], "t").is_err());
        let mut bad = b.clone();
        bad[8] = b'x';
        assert!(format!("{:#}", decode(&bad, "t").unwrap_err()).contains("not valid JSON"));
        let mut long = b.clone();
        long.extend_from_slice(&[0; 4]);
        assert!(format!("{:#}", decode(&long, "t").unwrap_err()).contains("after the last tensor"));
    }
}
