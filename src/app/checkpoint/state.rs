//! A training checkpoint's optimizer state as named tensors, at every width and kind (PyTorch's
//! state names, each tensor's own slots), and its inverse; and the weights `export` writes.

use super::*;

impl Trainer {
    /// The optimizer's state as `optimizer.<slot>.<param>` tensors, stored as the optimizer
    /// keeps it: F32, BF16, or at 8 bits U8 codes plus `optimizer.<slot>_absmax.<param>` (F32,
    /// one per block) for the quantized tensors and F32 for the small ones.
    pub(super) fn state_tensors(&mut self) -> Result<Vec<NamedTensor>> {
        let names = self.opt.config.state_names();
        let stored = self.opt.read_stored(&mut self.dev)?;
        let entries = &self.model.arena.entries;
        let mut out = Vec::new();
        let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>, dtype: Stored| {
            out.push(NamedTensor { name, shape, data, dtype });
        };
        if let Some(layout) = self.opt.muon_layout() {
            // Muon's compact slots: each tensor keeps its own optimizer's (momentum_buffer for a
            // matrix Muon steps, exp_avg and exp_avg_sq for the auxiliary AdamW's).
            let at = |r: &std::ops::Range<usize>| entries.iter().find(|e| e.range() == *r);
            for (k, r, start) in layout.tensor_slots() {
                let e = at(&r).context("every tensor of the layout is the model's")?;
                let name = format!("optimizer.{}.{}", names[k], e.name);
                match &stored {
                    StoredState::F32(s) => {
                        put(name, e.shape.clone(), s[k][start..start + r.len()].to_vec(), Stored::F32)
                    }
                    StoredState::Bf16(s) => {
                        let v = s[k][start..start + r.len()].iter().map(|&h| bf16_to_f32(h)).collect();
                        put(name, e.shape.clone(), v, Stored::Bf16)
                    }
                    _ => bail!("muon's state is f32 or bfloat16"),
                }
            }
            return Ok(out);
        }
        match stored {
            StoredState::F32(slots) => {
                for (slot, data) in names.iter().zip(slots) {
                    for e in entries {
                        put(
                            format!("optimizer.{slot}.{}", e.name),
                            e.shape.clone(),
                            data[e.range()].to_vec(),
                            Stored::F32,
                        );
                    }
                }
            }
            StoredState::Bf16(slots) => {
                for (slot, data) in names.iter().zip(slots) {
                    for e in entries {
                        let v = data[e.range()].iter().map(|&h| bf16_to_f32(h)).collect();
                        put(format!("optimizer.{slot}.{}", e.name), e.shape.clone(), v, Stored::Bf16);
                    }
                }
            }
            StoredState::Blockwise8 { codes, absmax, small } => {
                let table = self.opt.block_table().context("8-bit state has a block table")?;
                for (k, slot) in names.iter().enumerate() {
                    for e in entries {
                        let name = format!("optimizer.{slot}.{}", e.name);
                        match table.tensor_state(e.offset, e.len()) {
                            Some(TensorState::Quantized(ab)) => {
                                let codes = codes[k][e.range()].iter().map(|&c| c as f32).collect();
                                put(name, e.shape.clone(), codes, Stored::U8);
                                let blocks = vec![ab.len()];
                                let a = absmax[k][ab].to_vec();
                                put(format!("optimizer.{slot}_absmax.{}", e.name), blocks, a, Stored::F32);
                            }
                            Some(TensorState::Full(r)) => put(name, e.shape.clone(), small[k][r].to_vec(), Stored::F32),
                            None => {}
                        }
                    }
                }
            }
            StoredState::Factored(v) => {
                let table = self.opt.factor_table().context("adafactor's state has a layout")?;
                for (name, shape, r) in factored_tensors(table, entries) {
                    put(name, shape, v[r].to_vec(), Stored::F32);
                }
            }
        }
        Ok(out)
    }

    /// The inverse of [`Trainer::state_tensors`]: every tensor must be there, of the dtype this
    /// optimizer's width stores.
    pub(super) fn restore_state(&mut self, tensors: &[NamedTensor], what: &str) -> Result<()> {
        let bits = self.opt.config.optim_bits().bits();
        let find = |name: &str, dtype: Stored, len: usize| -> Result<&NamedTensor> {
            let t =
                tensors.iter().find(|t| t.name == name).with_context(|| format!("{what}: tensor {name} is missing"))?;
            ensure!(
                t.dtype == dtype,
                "{what}: {name} is stored as {:?}, but this {bits}-bit optimizer keeps it as {dtype:?}; a checkpoint resumes at the width it was saved with",
                t.dtype
            );
            ensure!(t.data.len() == len, "{what}: {name} has {} values, expected {len}", t.data.len());
            Ok(t)
        };
        let names = self.opt.config.state_names();
        let entries = &self.model.arena.entries;
        if let Some(layout) = self.opt.muon_layout() {
            let mut stored = self.opt.initial_stored();
            let at = |r: &std::ops::Range<usize>| entries.iter().find(|e| e.range() == *r);
            for (k, r, start) in layout.tensor_slots() {
                let e = at(&r).context("every tensor of the layout is the model's")?;
                let name = format!("optimizer.{}.{}", names[k], e.name);
                match &mut stored {
                    StoredState::F32(s) => {
                        s[k][start..start + r.len()].copy_from_slice(&find(&name, Stored::F32, r.len())?.data)
                    }
                    StoredState::Bf16(s) => {
                        let t = find(&name, Stored::Bf16, r.len())?;
                        for (h, &v) in s[k][start..start + r.len()].iter_mut().zip(&t.data) {
                            *h = bf16_from_f32(v);
                        }
                    }
                    _ => bail!("muon's state is f32 or bfloat16"),
                }
            }
            return self.opt.write_stored(&mut self.dev, &stored);
        }
        let stored = match self.opt.initial_stored() {
            StoredState::F32(mut slots) => {
                for (slot, data) in names.iter().zip(&mut slots) {
                    for e in entries {
                        let t = find(&format!("optimizer.{slot}.{}", e.name), Stored::F32, e.len())?;
                        data[e.range()].copy_from_slice(&t.data);
                    }
                }
                StoredState::F32(slots)
            }
            StoredState::Bf16(mut slots) => {
                for (slot, data) in names.iter().zip(&mut slots) {
                    for e in entries {
                        let t = find(&format!("optimizer.{slot}.{}", e.name), Stored::Bf16, e.len())?;
                        for (h, &v) in data[e.range()].iter_mut().zip(&t.data) {
                            *h = bf16_from_f32(v);
                        }
                    }
                }
                StoredState::Bf16(slots)
            }
            StoredState::Blockwise8 { mut codes, mut absmax, mut small } => {
                let table = self.opt.block_table().context("8-bit state has a block table")?;
                for (k, slot) in names.iter().enumerate() {
                    for e in entries {
                        let name = format!("optimizer.{slot}.{}", e.name);
                        match table.tensor_state(e.offset, e.len()) {
                            Some(TensorState::Quantized(ab)) => {
                                let t = find(&name, Stored::U8, e.len())?;
                                for (c, &v) in codes[k][e.range()].iter_mut().zip(&t.data) {
                                    *c = v as u8;
                                }
                                let a = find(&format!("optimizer.{slot}_absmax.{}", e.name), Stored::F32, ab.len())?;
                                absmax[k][ab].copy_from_slice(&a.data);
                            }
                            Some(TensorState::Full(r)) => {
                                small[k][r].copy_from_slice(&find(&name, Stored::F32, e.len())?.data);
                            }
                            None => {}
                        }
                    }
                }
                StoredState::Blockwise8 { codes, absmax, small }
            }
            StoredState::Factored(mut v) => {
                let table = self.opt.factor_table().context("adafactor's state has a layout")?;
                for (name, _, r) in factored_tensors(table, entries) {
                    let len = r.len();
                    v[r].copy_from_slice(&find(&name, Stored::F32, len)?.data);
                }
                StoredState::Factored(v)
            }
        };
        self.opt.write_stored(&mut self.dev, &stored)
    }
}

/// Adafactor's statistics as checkpoint tensors under PyTorch's state names: `row_var` of
/// shape [..., rows, 1] and `col_var` of [..., 1, cols] per tensor of two or more dimensions,
/// `variance` of its own shape per vector; each with its range in the stored state.
fn factored_tensors(
    table: &crate::backend::factored::FactorTable,
    entries: &[crate::nn::ParamInfo],
) -> Vec<(String, Vec<usize>, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    for (t, e) in table.tensors.iter().zip(entries) {
        if t.factored() {
            let lead = &e.shape[..e.shape.len() - 2];
            let shape = |last: [usize; 2]| [lead, &last[..]].concat();
            out.push((format!("optimizer.row_var.{}", e.name), shape([t.rows, 1]), t.state..t.col_state()));
            out.push((
                format!("optimizer.col_var.{}", e.name),
                shape([1, t.cols]),
                t.col_state()..t.state + t.state_len(),
            ));
        } else {
            out.push((format!("optimizer.variance.{}", e.name), e.shape.clone(), t.state..t.state + t.n));
        }
    }
    out
}

/// The model's weights from a checkpoint's tensors and metadata, as evaluation wants them:
/// the parameters as stored, except Schedule-Free's in train mode, which are y and become
/// x = y + (1 − 1/β1)·(z − y) (what `optimizer.eval()` makes, computed as its f32 pass does).
pub fn export_weights(
    tensors: &[NamedTensor],
    meta: &BTreeMap<String, String>,
    what: &str,
) -> Result<Vec<NamedTensor>> {
    let mut weights: Vec<NamedTensor> = tensors.iter().filter(|t| !t.name.starts_with("optimizer.")).cloned().collect();
    ensure!(!weights.is_empty(), "{what}: no model tensors in the checkpoint");
    let config = match meta.get("optimizer") {
        Some(text) => {
            let v: Value = serde_json::from_str(text).with_context(|| format!("{what}: the optimizer entry"))?;
            Some(OptimConfig::from_json(&v, "optimizer").with_context(|| what.to_string())?)
        }
        None => None,
    };
    let mode = meta.get("optimizer_mode").map_or(Ok(Mode::Train), |m| Mode::from_name(m))?;
    if let (Some(OptimConfig::SchedulefreeAdamw(c)), Mode::Train) = (&config, mode) {
        let weight = (1.0 - 1.0 / c.betas.0) as f32;
        for w in &mut weights {
            let zname = format!("optimizer.z.{}", w.name);
            let z = tensors.iter().find(|t| t.name == zname).with_context(|| format!("{what}: {zname} is missing"))?;
            ensure!(
                z.data.len() == w.data.len(),
                "{what}: {zname} has {} values, {} has {}",
                z.data.len(),
                w.name,
                w.data.len()
            );
            for (y, &z) in w.data.iter_mut().zip(&z.data) {
                *y += weight * (z - *y);
            }
        }
    }
    Ok(weights)
}
