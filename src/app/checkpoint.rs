//! Checkpoints in the safetensors format: an 8-byte little-endian header length, a JSON header
//! (`{"NAME": {"dtype": "F32", "shape": […], "data_offsets": [begin, end]}, …,
//! "__metadata__": {string: string}}`), then the tensors' bytes. PyTorch reads it with
//! `safetensors.torch.load_file`; the model's tensors carry `nn.Sequential`'s names (`0.weight`,
//! `0.bias`, `2.weight`, …), the optimizer's state `optimizer.<slot>.<param name>`.
//!
//! Files are written atomically: a temporary file in the same folder, fsync, rename over the
//! target, fsync of the folder. A crash at any instant leaves the old file or the new one.

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// A named f32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Serialize tensors (in the given order) and string metadata.
pub fn encode(tensors: &[NamedTensor], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut header = Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), json!(metadata));
    }
    let mut at = 0usize;
    for t in tensors {
        let bytes = t.data.len() * 4;
        header.insert(t.name.clone(), json!({"dtype": "F32", "shape": t.shape, "data_offsets": [at, at + bytes]}));
        at += bytes;
    }
    let mut text = Value::Object(header).to_string().into_bytes();
    // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + at);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    for t in tensors {
        for v in &t.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Parse and validate a safetensors file's bytes: F32 tensors only, offsets consistent with
/// the shapes, contiguous, and covering the data exactly. Tensors come back in offset order.
pub fn decode(bytes: &[u8], what: &str) -> Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
    ensure!(bytes.len() >= 8, "{what}: {} bytes is too short for a safetensors file", bytes.len());
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    ensure!(
        n <= (bytes.len() - 8) as u64 && n < 100 << 20,
        "{what}: header length {n} does not fit the file ({} bytes); truncated or not safetensors",
        bytes.len()
    );
    let header: Value = serde_json::from_slice(&bytes[8..8 + n as usize])
        .with_context(|| format!("{what}: the header is not valid JSON"))?;
    let Value::Object(map) = header else { bail!("{what}: the header is not a JSON object") };
    let data = &bytes[8 + n as usize..];
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::new();
    for (name, v) in map {
        if name == "__metadata__" {
            let Value::Object(m) = v else { bail!("{what}: __metadata__ is not an object") };
            for (k, val) in m {
                let Value::String(s) = val else { bail!("{what}: metadata {k} is not a string") };
                metadata.insert(k, s);
            }
            continue;
        }
        ensure!(v["dtype"] == "F32", "{what}: tensor {name} has dtype {}, only F32 is read", v["dtype"]);
        let shape: Vec<usize> = v["shape"]
            .as_array()
            .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
            .with_context(|| format!("{what}: tensor {name} has no valid shape"))?;
        let offs: Vec<usize> = v["data_offsets"]
            .as_array()
            .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
            .filter(|o: &Vec<usize>| o.len() == 2 && o[0] <= o[1])
            .with_context(|| format!("{what}: tensor {name} has no valid data_offsets"))?;
        let elems = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).context("shape overflows")?;
        ensure!(
            offs[1] - offs[0] == elems * 4,
            "{what}: tensor {name} of shape {shape:?} spans {} bytes",
            offs[1] - offs[0]
        );
        tensors.push((offs[0], offs[1], name, shape));
    }
    tensors.sort_by_key(|t| t.0);
    let mut at = 0;
    let mut out = Vec::new();
    for (begin, end, name, shape) in tensors {
        ensure!(begin == at, "{what}: tensor {name} starts at byte {begin}, expected {at} (gap or overlap)");
        ensure!(end <= data.len(), "{what}: tensor {name} ends past the file's data (truncated)");
        let data: Vec<f32> =
            data[begin..end].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        out.push(NamedTensor { name, shape, data });
        at = end;
    }
    ensure!(at == data.len(), "{what}: {} bytes after the last tensor", data.len() - at);
    Ok((out, metadata))
}

pub use crate::data::write_atomic;

pub fn read(path: &Path) -> Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    decode(&bytes, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let t = vec![
            NamedTensor {
                name: "0.weight".into(),
                shape: vec![2, 3],
                data: vec![1.0, -2.0, 3.5, 0.0, f32::MIN_POSITIVE, 7.0],
            },
            NamedTensor { name: "0.bias".into(), shape: vec![2], data: vec![0.25, -0.5] },
        ];
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), "test".to_string());
        let b = encode(&t, &meta);
        let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        assert_eq!((8 + n) % 8, 0, "data is 8-byte aligned");
        let (back, m) = decode(&b, "t").unwrap();
        assert_eq!(back, t);
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
