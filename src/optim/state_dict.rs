//! The optimizer's state as named tensors, at every width: `optimizer.<slot>.<param>` under
//! PyTorch's state names, each tensor's own slots, stored as the optimizer keeps them (F32,
//! BF16, or at 8 bits U8 codes plus `optimizer.<slot>_absmax.<param>` per quantized tensor), and
//! its inverse. Training checkpoints and the library's save and load both go through here.

use super::state::StoredState;
use super::{Mode, OptimConfig, Optimizer};
use crate::backend::quant::{bf16_from_f32, bf16_to_f32, TensorState};
use crate::backend::Device;
use crate::nn::{ParamArena, ParamInfo};
use crate::state_dict::{NamedTensor, StateDict, Stored, OPTIMIZER_PREFIX};
use anyhow::{bail, ensure, Context, Result};
use std::collections::{BTreeMap, HashSet};

/// The metadata keys an optimizer's state dict carries.
const KEY_CONFIG: &str = "optimizer";
const KEY_SCHEDULE: &str = "schedule";
const KEY_STEP: &str = "optimizer_step";
const KEY_MODE: &str = "optimizer_mode";

impl Optimizer {
    /// The state as `optimizer.<slot>.<param>` tensors named after `arena`'s tensors, with
    /// metadata: the configuration as JSON (`optimizer`), the schedule (`schedule`), the step
    /// count (`optimizer_step`, also the schedule's position) and, for Schedule-Free, which
    /// sequence the parameters hold (`optimizer_mode`). One readback.
    pub fn state_dict(&self, dev: &mut Device, arena: &ParamArena) -> Result<StateDict> {
        self.check_layout(arena)?;
        let tensors = self.named_state(arena, self.read_stored(dev)?)?;
        let mut metadata = BTreeMap::new();
        metadata.insert(KEY_CONFIG.into(), self.config.to_json().to_string());
        metadata.insert(KEY_SCHEDULE.into(), self.schedule.spec());
        metadata.insert(KEY_STEP.into(), self.step.to_string());
        // Which sequence the parameters are, where the optimizer has two (Schedule-Free: y in
        // train mode, x in eval); every other optimizer's are the same in both.
        if let OptimConfig::SchedulefreeAdamw(_) = self.config {
            metadata.insert(KEY_MODE.into(), self.mode.name().into());
        }
        Ok(StateDict { tensors, metadata })
    }

    /// Take the state, step count and mode that [`Optimizer::state_dict`] saved for an
    /// optimizer of the same kind, width and arena layout. Strict, like PyTorch's
    /// `load_state_dict`: a missing, extra (any `optimizer.` tensor this optimizer does not keep),
    /// mis-shaped or differently stored tensor is an error that names it, and nothing is
    /// changed. The hyperparameters and schedule stay this optimizer's (the saved ones are in
    /// the `optimizer` and `schedule` entries). Load the model's parameters beside it: for
    /// Schedule-Free the saved mode says which sequence they hold.
    pub fn load_state_dict(&mut self, dev: &mut Device, arena: &ParamArena, dict: &StateDict) -> Result<()> {
        self.check_layout(arena)?;
        let (bits, name) = (self.config.optim_bits().bits(), self.config.name());
        if let Some(text) = dict.metadata.get(KEY_CONFIG) {
            let v: serde_json::Value =
                serde_json::from_str(text).with_context(|| format!("the '{KEY_CONFIG}' entry is not JSON"))?;
            let saved = OptimConfig::from_json(&v, KEY_CONFIG)?;
            ensure!(
                saved.name() == name && saved.optim_bits() == self.config.optim_bits(),
                "the state was saved by a {}-bit {} optimizer, this one is a {bits}-bit {name}",
                saved.optim_bits().bits(),
                saved.name()
            );
        }
        let step: u64 = match dict.metadata.get(KEY_STEP) {
            Some(s) => s.parse().ok().with_context(|| format!("'{KEY_STEP}' ({s}) is not a whole number"))?,
            None => bail!("the state dict has no '{KEY_STEP}' entry: it was not saved by Optimizer::state_dict"),
        };
        // Checkpoints before the key stored train-mode parameters (nothing else existed).
        let mode = dict.metadata.get(KEY_MODE).map_or(Ok(Mode::Train), |m| Mode::from_name(m))?;
        // What this optimizer keeps, by name, shape and dtype: each must be there as such.
        let expected = self.named_state(arena, self.initial_stored())?;
        for e in &expected {
            let t = dict.get(&e.name).with_context(|| format!("tensor {} is missing", e.name))?;
            ensure!(
                t.dtype == e.dtype,
                "{} is stored as {:?}, but this {bits}-bit optimizer keeps it as {:?}; state resumes at the width it was saved with",
                e.name,
                t.dtype,
                e.dtype
            );
            ensure!(t.shape == e.shape, "{} has shape {:?}, this optimizer's {:?}", e.name, t.shape, e.shape);
        }
        let known: HashSet<&str> = expected.iter().map(|e| e.name.as_str()).collect();
        if let Some(t) =
            dict.tensors.iter().find(|t| t.name.starts_with(OPTIMIZER_PREFIX) && !known.contains(t.name.as_str()))
        {
            bail!("tensor {} is not state this {bits}-bit {name} optimizer keeps for this model", t.name);
        }
        let stored = self.unnamed_state(arena, dict)?;
        self.write_stored(dev, &stored)?;
        self.step = step;
        self.mode = mode;
        Ok(())
    }

    /// `stored` as named tensors (the per-width naming).
    fn named_state(&self, arena: &ParamArena, stored: StoredState) -> Result<Vec<NamedTensor>> {
        let names = self.config.state_names();
        let entries = &arena.entries;
        let mut out = Vec::new();
        let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>, dtype: Stored| {
            out.push(NamedTensor { name, shape, data, dtype });
        };
        if let Some(layout) = self.muon_layout() {
            // Muon's compact slots: each tensor keeps its own optimizer's (momentum_buffer for a
            // matrix Muon steps, exp_avg and exp_avg_sq for the auxiliary AdamW's).
            for (k, r, start) in layout.tensor_slots() {
                let e = entry_at(entries, &r)?;
                let name = format!("{OPTIMIZER_PREFIX}{}.{}", names[k], e.name);
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
                        put(slot_name(slot, e), e.shape.clone(), data[e.range()].to_vec(), Stored::F32);
                    }
                }
            }
            StoredState::Bf16(slots) => {
                for (slot, data) in names.iter().zip(slots) {
                    for e in entries {
                        let v = data[e.range()].iter().map(|&h| bf16_to_f32(h)).collect();
                        put(slot_name(slot, e), e.shape.clone(), v, Stored::Bf16);
                    }
                }
            }
            StoredState::Blockwise8 { codes, absmax, small } => {
                let table = self.block_table().context("8-bit state has a block table")?;
                for (k, slot) in names.iter().enumerate() {
                    for e in entries {
                        match table.tensor_state(e.offset, e.len()) {
                            Some(TensorState::Quantized(ab)) => {
                                let c = codes[k][e.range()].iter().map(|&c| c as f32).collect();
                                put(slot_name(slot, e), e.shape.clone(), c, Stored::U8);
                                let a = absmax[k][ab.clone()].to_vec();
                                put(slot_name(&format!("{slot}_absmax"), e), vec![ab.len()], a, Stored::F32);
                            }
                            Some(TensorState::Full(r)) => {
                                put(slot_name(slot, e), e.shape.clone(), small[k][r].to_vec(), Stored::F32)
                            }
                            None => {}
                        }
                    }
                }
            }
            StoredState::Factored(v) => {
                let table = self.factor_table().context("adafactor's state has a layout")?;
                for (name, shape, r) in factored_tensors(table, entries) {
                    put(name, shape, v[r].to_vec(), Stored::F32);
                }
            }
            StoredState::FactoredBf16(v) => {
                let table = self.factor_table().context("adafactor's state has a layout")?;
                for (name, shape, r) in factored_tensors(table, entries) {
                    put(name, shape, v[r].iter().map(|&h| bf16_to_f32(h)).collect(), Stored::Bf16);
                }
            }
        }
        Ok(out)
    }

    /// The inverse of [`Optimizer::named_state`], from tensors already checked against it.
    fn unnamed_state(&self, arena: &ParamArena, dict: &StateDict) -> Result<StoredState> {
        let find = |name: &str| dict.get(name).with_context(|| format!("tensor {name} is missing"));
        let names = self.config.state_names();
        let entries = &arena.entries;
        if let Some(layout) = self.muon_layout() {
            let mut stored = self.initial_stored();
            for (k, r, start) in layout.tensor_slots() {
                let e = entry_at(entries, &r)?;
                let t = find(&format!("{OPTIMIZER_PREFIX}{}.{}", names[k], e.name))?;
                match &mut stored {
                    StoredState::F32(s) => s[k][start..start + r.len()].copy_from_slice(&t.data),
                    StoredState::Bf16(s) => {
                        for (h, &v) in s[k][start..start + r.len()].iter_mut().zip(&t.data) {
                            *h = bf16_from_f32(v);
                        }
                    }
                    _ => bail!("muon's state is f32 or bfloat16"),
                }
            }
            return Ok(stored);
        }
        Ok(match self.initial_stored() {
            StoredState::F32(mut slots) => {
                for (slot, data) in names.iter().zip(&mut slots) {
                    for e in entries {
                        data[e.range()].copy_from_slice(&find(&slot_name(slot, e))?.data);
                    }
                }
                StoredState::F32(slots)
            }
            StoredState::Bf16(mut slots) => {
                for (slot, data) in names.iter().zip(&mut slots) {
                    for e in entries {
                        for (h, &v) in data[e.range()].iter_mut().zip(&find(&slot_name(slot, e))?.data) {
                            *h = bf16_from_f32(v);
                        }
                    }
                }
                StoredState::Bf16(slots)
            }
            StoredState::Blockwise8 { mut codes, mut absmax, mut small } => {
                let table = self.block_table().context("8-bit state has a block table")?;
                for (k, slot) in names.iter().enumerate() {
                    for e in entries {
                        match table.tensor_state(e.offset, e.len()) {
                            Some(TensorState::Quantized(ab)) => {
                                for (c, &v) in codes[k][e.range()].iter_mut().zip(&find(&slot_name(slot, e))?.data) {
                                    *c = v as u8;
                                }
                                absmax[k][ab].copy_from_slice(&find(&slot_name(&format!("{slot}_absmax"), e))?.data);
                            }
                            Some(TensorState::Full(r)) => {
                                small[k][r].copy_from_slice(&find(&slot_name(slot, e))?.data);
                            }
                            None => {}
                        }
                    }
                }
                StoredState::Blockwise8 { codes, absmax, small }
            }
            StoredState::Factored(mut v) => {
                let table = self.factor_table().context("adafactor's state has a layout")?;
                for (name, _, r) in factored_tensors(table, entries) {
                    v[r].copy_from_slice(&find(&name)?.data);
                }
                StoredState::Factored(v)
            }
            StoredState::FactoredBf16(mut v) => {
                let table = self.factor_table().context("adafactor's state has a layout")?;
                for (name, _, r) in factored_tensors(table, entries) {
                    for (h, &x) in v[r].iter_mut().zip(&find(&name)?.data) {
                        *h = bf16_from_f32(x);
                    }
                }
                StoredState::FactoredBf16(v)
            }
        })
    }
}

/// `optimizer.<slot>.<param>`.
fn slot_name(slot: &str, e: &ParamInfo) -> String {
    format!("{OPTIMIZER_PREFIX}{slot}.{}", e.name)
}

/// The arena entry that covers exactly `r`.
fn entry_at<'a>(entries: &'a [ParamInfo], r: &std::ops::Range<usize>) -> Result<&'a ParamInfo> {
    entries.iter().find(|e| e.range() == *r).context("every tensor of the layout is the model's")
}

/// Adafactor's statistics as tensors under PyTorch's state names: `row_var` of shape
/// [..., rows, 1] and `col_var` of [..., 1, cols] per tensor of two or more dimensions,
/// `variance` of its own shape per vector; each with its range in the stored state.
fn factored_tensors(
    table: &crate::backend::factored::FactorTable,
    entries: &[ParamInfo],
) -> Vec<(String, Vec<usize>, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    for (t, e) in table.tensors.iter().zip(entries) {
        if t.factored() {
            let lead = &e.shape[..e.shape.len() - 2];
            let shape = |last: [usize; 2]| [lead, &last[..]].concat();
            out.push((slot_name("row_var", e), shape([t.rows, 1]), t.state..t.col_state()));
            out.push((slot_name("col_var", e), shape([1, t.cols]), t.col_state()..t.state + t.state_len()));
        } else {
            out.push((slot_name("variance", e), e.shape.clone(), t.state..t.state + t.n));
        }
    }
    out
}
