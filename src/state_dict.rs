//! Named tensors in safetensors files: the one reader and writer of models, optimizer state and
//! training checkpoints. A file is an 8-byte little-endian header length, a JSON header
//! (`{"NAME": {"dtype": "F32", "shape": […], "data_offsets": [begin, end]}, …, "__metadata__":
//! {string: string}}`), then the tensors' bytes; the `safetensors` crate (the format's reference
//! implementation) reads and writes it, and PyTorch reads it with
//! `safetensors.torch.load_file`.
//!
//! [`StateDict`] is what [`ParamArena::state_dict`](crate::nn::ParamArena::state_dict) and
//! [`Optimizer::state_dict`](crate::optim::Optimizer::state_dict) return and what their
//! `load_state_dict` take: tensors under PyTorch's names (`0.weight`, `0.bias`, … as
//! `nn.Sequential` names them; `optimizer.<slot>.<param>` for the optimizer's state) and string
//! metadata. Saving is atomic (a temporary file, fsync, rename): a crash leaves the old file or
//! the new one.
//!
//! ```
//! use descent::backend::{Act, Device};
//! use descent::nn::Mlp;
//! use descent::optim::{OptimConfig, Optimizer, Schedule};
//! use descent::state_dict::StateDict;
//! use descent::torch_rng::TorchGenerator;
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut dev = Device::cpu();
//! let model = Mlp::new(&mut dev, &[4, 8, 3], Act::Relu, &mut TorchGenerator::new(0))?;
//! let opt = Optimizer::new(&mut dev, &model.arena, OptimConfig::defaults("adamw")?, Schedule::Constant)?;
//! let mut dict = model.arena.state_dict(&mut dev)?;
//! dict.extend(opt.state_dict(&mut dev, &model.arena)?)?;
//! let path = std::env::temp_dir().join("descent-doc-state-dict.safetensors");
//! dict.save(&path)?;
//!
//! // Another model of the same layout, and its optimizer, take the saved state.
//! let copy = Mlp::new(&mut dev, &[4, 8, 3], Act::Relu, &mut TorchGenerator::new(1))?;
//! let mut opt2 = Optimizer::new(&mut dev, &copy.arena, OptimConfig::defaults("adamw")?, Schedule::Constant)?;
//! let loaded = StateDict::load(&path)?;
//! copy.arena.load_state_dict(&mut dev, &loaded)?;
//! opt2.load_state_dict(&mut dev, &copy.arena, &loaded)?;
//! assert_eq!(dev.read(copy.arena.params)?, dev.read(model.arena.params)?);
//! # std::fs::remove_file(&path)?;
//! # Ok(()) }
//! ```

use crate::backend::quant::bf16_to_f32;
use anyhow::{anyhow, bail, ensure, Context, Result};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The prefix of the optimizer's tensors in a state dict (`optimizer.<slot>.<param>`); a
/// model's loader leaves them to the optimizer's.
pub const OPTIMIZER_PREFIX: &str = "optimizer.";

/// A named tensor. Its values are held as f32 whatever the file stores (every bfloat16 and
/// u8 is exactly an f32); `dtype` says how the file stores them.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// PyTorch's name for it (`0.weight`, `optimizer.exp_avg.0.weight`, …).
    pub name: String,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// The values, widened to f32.
    pub data: Vec<f32>,
    /// How the file stores them.
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

/// Read and [`decode`] a safetensors file.
pub fn read(path: &Path) -> Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    decode(&bytes, &path.display().to_string())
}

/// Tensors and string metadata: a safetensors file in memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDict {
    /// The tensors, each name once.
    pub tensors: Vec<NamedTensor>,
    /// The file's `__metadata__`.
    pub metadata: BTreeMap<String, String>,
}

impl StateDict {
    /// The tensor called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Add `other`'s tensors and metadata; a name both hold is an error, not an overwrite.
    pub fn extend(&mut self, other: StateDict) -> Result<()> {
        for t in &other.tensors {
            ensure!(self.get(&t.name).is_none(), "both state dicts hold a tensor {}", t.name);
        }
        for k in other.metadata.keys() {
            ensure!(!self.metadata.contains_key(k), "both state dicts hold a metadata entry {k}");
        }
        self.tensors.extend(other.tensors);
        self.metadata.extend(other.metadata);
        Ok(())
    }

    /// The file's bytes (the same dict always gives the same bytes).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        encode(&self.tensors, &self.metadata)
    }

    /// Parse a file's bytes; `what` names them in errors.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<StateDict> {
        let (tensors, metadata) = decode(bytes, what)?;
        Ok(StateDict { tensors, metadata })
    }

    /// Write to `path` atomically (a temporary file in the same folder, fsync, rename): a
    /// failure leaves the previous file, and no temporary one.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::data::write_atomic(path, &self.to_bytes()?).with_context(|| format!("saving {}", path.display()))
    }

    /// Read a file that [`StateDict::save`] (or `safetensors.torch.save_file`) wrote.
    pub fn load(path: &Path) -> Result<StateDict> {
        let (tensors, metadata) = read(path)?;
        Ok(StateDict { tensors, metadata })
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
