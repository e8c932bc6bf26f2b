//! Optimizer state by width. Each width is one type that owns its buffers: allocation at the
//! configuration's initial value, the fused step over parts of the arena, readback of the
//! stored bits, their decoding to f32, restore, and release. [`OptimState`] dispatches to them:
//! the one place the widths are matched on the device side. (Checkpoints name the stored bits
//! per width in `state_dict.rs`, beside them.)

use super::factored_state::FactoredState;
use super::muon_state::MuonState;
use super::step::Step;
use super::{Blockwise8, HyperKey, NsDtype, OptimBits, OptimConfig, Slot};
use crate::backend::optim_kernel::{GradCheck, Objective, OptimStep};
use crate::backend::quant::{self, BlockTable};
use crate::backend::Device;
use crate::backend::GroupedStep;
use crate::message::Setting;
use crate::said;
use crate::tensor::View;
use anyhow::{bail, ensure, Result};
use std::ops::Range;

/// The state as stored, read back for checkpoints (arena-indexed where per element).
#[derive(Clone, Debug, PartialEq)]
pub enum StoredState {
    /// Each slot's f32 values.
    F32(Vec<Vec<f32>>),
    /// Each slot's bfloat16 bits.
    Bf16(Vec<Vec<u16>>),
    /// Each kept slot as codes, absmax per quantized block, and the small tensors' f32 state
    /// (in the order of [`BlockTable::blocks`]).
    Blockwise8 {
        /// Codes per arena element, per slot.
        codes: Vec<Vec<u8>>,
        /// Absmax per quantized block, per slot.
        absmax: Vec<Vec<f32>>,
        /// f32 state of the small tensors, per slot.
        small: Vec<Vec<f32>>,
    },
    /// Adafactor's statistics, every tensor's in the order of its layout (R then C per
    /// factored tensor, V per vector).
    Factored(Vec<f32>),
    /// [`StoredState::Factored`]'s statistics as bfloat16 bits.
    FactoredBf16(Vec<u16>),
}

/// The 8-bit state as stored: codes, absmax and small-tensor state, each per kept slot (the
/// fields of [`StoredState::Blockwise8`]).
type Stored8 = (Vec<Vec<u8>>, Vec<Vec<f32>>, Vec<Vec<f32>>);

/// Raw f32 bits as the f32 values `Device::write` takes.
fn floats(w: &[u32]) -> Vec<f32> {
    w.iter().map(|&x| f32::from_bits(x)).collect()
}

/// f32 values as their raw bits.
fn bits(v: Vec<f32>) -> Vec<u32> {
    v.into_iter().map(f32::to_bits).collect()
}

/// f32 state: one buffer per slot, as long as the arena.
pub struct F32State {
    /// One buffer per slot, in slot order.
    pub slots: Vec<View>,
}

impl F32State {
    fn alloc(dev: &mut Device, n: usize, inits: &[f32]) -> Result<F32State> {
        let mut v = Vec::new();
        for &init in inits {
            let s = dev.alloc(n)?;
            dev.fill(s, init);
            v.push(s);
        }
        Ok(F32State { slots: v })
    }

    fn step(&self, dev: &mut Device, k: &OptimStep, o: Objective, params: View, grads: View, ranges: &[Range<usize>]) {
        for r in ranges {
            let s: Vec<View> = self.slots.iter().map(|v| v.slice(r.start, r.len())).collect();
            dev.optim_step(k, o, params.slice(r.start, r.len()), grads.slice(r.start, r.len()), &s);
        }
    }

    async fn read(&self, dev: &mut Device) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::new();
        for &v in &self.slots {
            out.push(dev.read_async(v).await?);
        }
        Ok(out)
    }

    fn write(&self, dev: &mut Device, v: &[Vec<f32>]) -> Result<()> {
        for (&s, data) in self.slots.iter().zip(v) {
            dev.write(s, data)?;
        }
        Ok(())
    }

    fn release(self, dev: &mut Device) {
        self.slots.into_iter().for_each(|v| dev.release(v));
    }
}

/// bfloat16 state: one buffer per slot holding two values per word (whole buffers, in words).
pub struct Bf16State {
    /// One buffer per slot, in slot order.
    pub slots: Vec<View>,
}

impl Bf16State {
    fn alloc(dev: &mut Device, n: usize, inits: &[f32]) -> Result<Bf16State> {
        let mut v = Vec::new();
        for &init in inits {
            let h = quant::bf16_from_f32(init) as u32;
            let s = dev.alloc(n.div_ceil(2))?;
            dev.fill(s, f32::from_bits(h | h << 16));
            v.push(s);
        }
        Ok(Bf16State { slots: v })
    }

    fn step(&self, dev: &mut Device, k: &OptimStep, o: Objective, params: View, grads: View, ranges: &[Range<usize>]) {
        for r in ranges {
            let s: Vec<View> = self.slots.iter().map(|v| View { offset: r.start, len: r.len(), ..*v }).collect();
            dev.optim_step_bf16(k, o, params.slice(r.start, r.len()), grads.slice(r.start, r.len()), &s);
        }
    }

    async fn read(&self, dev: &mut Device, n: usize) -> Result<Vec<Vec<u16>>> {
        let mut out = Vec::new();
        for &v in &self.slots {
            out.push(quant::bf16_from_words(&dev.read_async(v).await?, n));
        }
        Ok(out)
    }

    fn write(&self, dev: &mut Device, n: usize, v: &[Vec<u16>]) -> Result<()> {
        for (&s, h) in self.slots.iter().zip(v) {
            ensure!(h.len() == n, "bf16 state of {} values for {n} parameters", h.len());
            dev.write(s, &quant::bf16_words(h))?;
        }
        Ok(())
    }

    fn release(self, dev: &mut Device) {
        self.slots.into_iter().for_each(|v| dev.release(v));
    }
}

/// Blockwise 8-bit state, and the layout it was built for.
pub struct Blockwise8State {
    /// The buffers the kernels bind.
    pub buffers: Blockwise8,
    /// Every block of every tensor (the table on the device lists the trainable ones).
    pub table: BlockTable,
    /// The trainable ranges the device's table was written for.
    pub uploaded_for: Vec<Range<usize>>,
}

impl Blockwise8State {
    /// Codes of zero for each slot of `slots` (its map's code for 0), zero absmax and small
    /// state, and the table of `tensors`.
    fn alloc(dev: &mut Device, n: usize, tensors: &[(usize, usize)], slots: &[Slot]) -> Result<Blockwise8State> {
        let table = BlockTable::new(tensors, n);
        let zeros = |c: u8| f32::from_bits(u32::from_le_bytes([c; 4]));
        let mut codes = Vec::new();
        for s in slots {
            let c = dev.alloc(table.code_words())?;
            dev.fill(c, zeros(quant::map_8bit(s.signed_8bit()).zero));
            codes.push(c);
        }
        let k = slots.len();
        let absmax = dev.alloc_zeroed((k * table.quantized_blocks).max(1))?;
        let small = dev.alloc_zeroed((k * table.small_len).max(1))?;
        let words = table.words();
        let table_view = dev.alloc(words.len())?;
        let signed = slots.iter().enumerate().filter(|(_, s)| s.signed_8bit()).map(|(i, _)| 1u32 << i).sum();
        let buffers = Blockwise8 {
            codes,
            signed,
            absmax,
            small,
            table: table_view,
            rows: std::sync::Arc::new(table.blocks.clone()),
            quantized_blocks: table.quantized_blocks,
            small_len: table.small_len,
        };
        dev.write(table_view, &floats(&words))?;
        Ok(Blockwise8State { buffers, table, uploaded_for: std::iter::once(0..n).collect() })
    }

    fn step(
        &mut self,
        dev: &mut Device,
        k: &OptimStep,
        o: Objective,
        params: View,
        grads: View,
        ranges: &[Range<usize>],
    ) -> Result<()> {
        ensure!(
            k.has_8bit() && k.slots().len() == self.buffers.codes.len(),
            "{k:?} has no blockwise 8-bit form with these slots"
        );
        if self.uploaded_for.as_slice() != ranges {
            // Some tensors were frozen or unfrozen: list the trainable tensors' blocks.
            let inside = |b: &quant::Block| ranges.iter().any(|r| r.contains(&b.start));
            let rows =
                BlockTable { blocks: self.table.blocks.iter().copied().filter(inside).collect(), ..self.table.clone() };
            let values = floats(&rows.words());
            dev.write(self.buffers.table.slice(0, values.len()), &values)?;
            self.buffers.rows = std::sync::Arc::new(rows.blocks);
            self.uploaded_for = ranges.to_vec();
        }
        dev.step_8bit(k, o, params, grads, &self.buffers);
        Ok(())
    }

    /// Codes, absmax and small-tensor state as stored: the fields of [`StoredState::Blockwise8`].
    async fn read(&self, dev: &mut Device, n: usize) -> Result<Stored8> {
        let b = &self.buffers;
        let mut codes = Vec::new();
        for &v in &b.codes {
            let words = bits(dev.read_async(v).await?);
            let mut c: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            c.truncate(n);
            codes.push(c);
        }
        let k = b.codes.len();
        let split =
            |v: Vec<f32>, len: usize| -> Vec<Vec<f32>> { (0..k).map(|s| v[s * len..(s + 1) * len].to_vec()).collect() };
        let absmax = split(dev.read_async(b.absmax).await?, b.quantized_blocks);
        let small = split(dev.read_async(b.small).await?, b.small_len);
        Ok((codes, absmax, small))
    }

    fn write(
        &self,
        dev: &mut Device,
        n: usize,
        codes: &[Vec<u8>],
        absmax: &[Vec<f32>],
        small: &[Vec<f32>],
    ) -> Result<()> {
        let b = &self.buffers;
        let k = b.codes.len();
        ensure!(
            codes.len() == k && absmax.len() == k && small.len() == k,
            "8-bit state of {} slots, this optimizer keeps {k}",
            codes.len()
        );
        for (&v, c) in b.codes.iter().zip(codes) {
            ensure!(c.len() == n, "8-bit codes for {} values, {n} parameters", c.len());
            let mut c = c.clone();
            c.resize(4 * v.len, 0);
            let words: Vec<u32> =
                c.chunks_exact(4).map(|x| u32::from_le_bytes(x.try_into().expect("4 bytes"))).collect();
            dev.write(v, &floats(&words))?;
        }
        let join = |parts: &[Vec<f32>], len: usize, what: &str| -> Result<Vec<f32>> {
            ensure!(parts.iter().all(|x| x.len() == len), "{what}: {} values, expected {len}", parts[0].len());
            let mut all = parts.concat();
            all.resize(all.len().max(1), 0.0);
            Ok(all)
        };
        dev.write(b.absmax, &join(absmax, b.quantized_blocks, "absmax")?)?;
        dev.write(b.small, &join(small, b.small_len, "small-tensor state")?)?;
        Ok(())
    }

    /// Each slot dequantized per arena element (small tensors as stored), then each one's
    /// absmax (`<slot>_absmax`) when some tensor is quantized.
    fn decode(&self, n: usize, names: &[&'static str], stored: Stored8) -> Vec<(&'static str, Vec<f32>)> {
        let (codes, absmax, small) = stored;
        let signed = self.buffers.signed;
        let mut out = Vec::new();
        for (k, name) in names.iter().enumerate().take(codes.len()) {
            let map = quant::map_8bit(signed >> k & 1 == 1);
            let mut v = vec![0f32; n];
            for b in &self.table.blocks {
                let r = b.start..b.start + b.len;
                match b.kind {
                    quant::BlockKind::Quantized => {
                        for i in r {
                            v[i] = map.decode(codes[k][i], absmax[k][b.index]);
                        }
                    }
                    quant::BlockKind::Full => v[r].copy_from_slice(&small[k][b.index..b.index + b.len]),
                }
            }
            out.push((*name, v));
        }
        if self.table.quantized_blocks > 0 {
            for (name, a) in names.iter().zip(absmax) {
                out.push((absmax_name(name), a));
            }
        }
        out
    }

    fn release(self, dev: &mut Device) {
        let b = self.buffers;
        for v in b.codes.into_iter().chain([b.absmax, b.small, b.table]) {
            dev.release(v);
        }
    }
}

/// The name of a slot's absmax in readbacks and replays: `exp_avg_absmax`, ...
pub fn absmax_name(slot: &str) -> &'static str {
    Slot::ALL.iter().find(|s| s.name() == slot).map_or("absmax", |s| s.absmax_name())
}

/// Where an optimizer's state lives on its device, by width.
pub enum OptimState {
    /// f32 state.
    F32(F32State),
    /// bfloat16 state.
    Bf16(Bf16State),
    /// Adam's blockwise 8-bit state.
    Blockwise8(Blockwise8State),
    /// Adafactor's factored state.
    Factored(FactoredState),
    /// Muon's momentum buffers and its auxiliary AdamW's moments (compact).
    Muon(MuonState),
}

impl OptimState {
    /// The state of `config` for `n` parameters holding `tensors` (first element, shape): a
    /// buffer per slot at its width, slot k at `inits[k]` (8 bits: codes of zero, each tensor
    /// quantized in blocks of its own); Adafactor's statistics per tensor and Muon's compact
    /// slots, zeroed.
    pub(super) fn alloc(
        dev: &mut Device,
        config: &OptimConfig,
        n: usize,
        inits: &[f32],
        tensors: &[(usize, Vec<usize>)],
    ) -> Result<OptimState> {
        let bits = config.optim_bits();
        match config {
            OptimConfig::Adafactor(_) => {
                return Ok(OptimState::Factored(FactoredState::alloc(dev, n, tensors, bits == OptimBits::B16)?))
            }
            OptimConfig::Muon(c) => {
                if c.ns_dtype == NsDtype::Bfloat16 && dev.is_gpu() {
                    bail!(said![
                        "muon's ",
                        HyperKey::NsDtype,
                        " bfloat16 runs on the CPU backend only (its products need bfloat16 arithmetic): use ",
                        Setting::DeviceCpu,
                        ", or ",
                        HyperKey::NsDtype,
                        " float32 on a GPU"
                    ]);
                }
                return Ok(OptimState::Muon(MuonState::alloc(dev, bits, tensors, c.aux_first_last)?));
            }
            _ => {}
        }
        let tensors: Vec<(usize, usize)> = tensors.iter().map(|(at, shape)| (*at, shape.iter().product())).collect();
        let tensors = tensors.as_slice();
        Ok(match bits {
            OptimBits::B32 => OptimState::F32(F32State::alloc(dev, n, inits)?),
            OptimBits::B16 => OptimState::Bf16(Bf16State::alloc(dev, n, inits)?),
            OptimBits::B8 => OptimState::Blockwise8(Blockwise8State::alloc(dev, n, tensors, &config.slots())?),
        })
    }

    /// Refuse ranges this width cannot step (bfloat16 pairs: ranges start at even offsets),
    /// before a step is counted.
    pub(super) fn check_ranges(&self, ranges: &[Range<usize>]) -> Result<()> {
        if let OptimState::Bf16(_) = self {
            ensure!(ranges.iter().all(|r| r.start % 2 == 0), "bfloat16 state is stepped from even offsets");
        }
        Ok(())
    }

    /// One step `k`, going the way `o` says, over the parts `ranges` of `params` and `grads`.
    pub(super) fn step(
        &mut self,
        dev: &mut Device,
        k: &Step,
        o: Objective,
        params: View,
        grads: View,
        ranges: &[Range<usize>],
    ) -> Result<()> {
        match (self, k) {
            (OptimState::F32(s), Step::Fused(k)) => {
                s.step(dev, k, o, params, grads, ranges);
                Ok(())
            }
            (OptimState::Bf16(s), Step::Fused(k)) => {
                s.step(dev, k, o, params, grads, ranges);
                Ok(())
            }
            (OptimState::Blockwise8(s), Step::Fused(k)) => s.step(dev, k, o, params, grads, ranges),
            (OptimState::Factored(s), Step::Factored(h)) => s.step(dev, h, o, params, grads, ranges),
            (OptimState::Muon(s), Step::Muon(m)) => s.step(dev, m, o, params, grads, ranges),
            _ => bail!("this step's kernel does not match the state's kind (Adafactor's state is factored)"),
        }
    }

    /// [`OptimState::step`] over the whole of `params` with `check` folded in
    /// ([`Device::optim_step_checked`]), where `k` is one fused launch at f32 or bfloat16:
    /// returns whether it stepped (false: nothing was done, and the caller checks and steps
    /// apart).
    pub(super) fn step_checked(
        &mut self,
        dev: &mut Device,
        k: &Step,
        o: Objective,
        params: View,
        grads: View,
        check: GradCheck,
    ) -> bool {
        match (self, k) {
            (OptimState::F32(s), Step::Fused(k)) => {
                dev.optim_step_checked(k, o, params, grads, &s.slots, false, check);
                true
            }
            (OptimState::Bf16(s), Step::Fused(k)) => {
                let slots: Vec<View> = s.slots.iter().map(|v| View { offset: 0, len: params.len, ..*v }).collect();
                dev.optim_step_checked(k, o, params, grads, &slots, true, check);
                true
            }
            _ => false,
        }
    }

    /// One grouped step: every group's runs in one launch ([`GroupedStep`]). Parameter groups
    /// allow f32 and bfloat16 state only.
    pub(super) fn step_groups(
        &self,
        dev: &mut Device,
        g: &GroupedStep,
        o: Objective,
        params: View,
        grads: View,
    ) -> Result<()> {
        match self {
            OptimState::F32(s) => dev.optim_step_groups(g, o, params, grads, &s.slots, false),
            OptimState::Bf16(s) => {
                let slots: Vec<View> = s.slots.iter().map(|v| View { offset: 0, len: params.len, ..*v }).collect();
                dev.optim_step_groups(g, o, params, grads, &slots, true)
            }
            _ => bail!("parameter groups step f32 and bfloat16 state only"),
        }
        Ok(())
    }

    /// The state exactly as stored, for `n` parameters.
    pub(super) async fn read_stored(&self, dev: &mut Device, n: usize) -> Result<StoredState> {
        Ok(match self {
            OptimState::F32(s) => StoredState::F32(s.read(dev).await?),
            OptimState::Bf16(s) => StoredState::Bf16(s.read(dev, n).await?),
            OptimState::Blockwise8(s) => {
                let (codes, absmax, small) = s.read(dev, n).await?;
                StoredState::Blockwise8 { codes, absmax, small }
            }
            OptimState::Factored(s) if s.bf16() => StoredState::FactoredBf16(s.read_bf16(dev).await?),
            OptimState::Factored(s) => StoredState::Factored(s.read(dev).await?),
            OptimState::Muon(s) if s.bits == OptimBits::B32 => StoredState::F32(s.read_f32(dev).await?),
            OptimState::Muon(s) => StoredState::Bf16(s.read_bf16(dev).await?),
        })
    }

    /// The state read back and decoded to f32 per arena element, named by `names` (see
    /// `Optimizer::read_state`).
    pub(super) async fn read_decoded(
        &self,
        dev: &mut Device,
        n: usize,
        names: Vec<&'static str>,
    ) -> Result<Vec<(&'static str, Vec<f32>)>> {
        Ok(match self {
            OptimState::F32(s) => names.into_iter().zip(s.read(dev).await?).collect(),
            OptimState::Bf16(s) => {
                let slots = s.read(dev, n).await?;
                names
                    .into_iter()
                    .zip(slots)
                    .map(|(n, h)| (n, h.into_iter().map(quant::bf16_to_f32).collect()))
                    .collect()
            }
            OptimState::Blockwise8(s) => {
                let stored = s.read(dev, n).await?;
                s.decode(n, &names, stored)
            }
            OptimState::Factored(s) => s.decode(&s.read_widened(dev).await?),
            // Muon's compact slots, each as long as the tensors that keep it; empty ones left out.
            OptimState::Muon(s) => {
                let slots: Vec<Vec<f32>> = if s.bits == OptimBits::B32 {
                    s.read_f32(dev).await?
                } else {
                    s.read_bf16(dev)
                        .await?
                        .into_iter()
                        .map(|h| h.into_iter().map(quant::bf16_to_f32).collect())
                        .collect()
                };
                names.into_iter().zip(slots).filter(|(_, v)| !v.is_empty()).collect()
            }
        })
    }

    /// What a new state of this width and layout stores: slot k at `inits[k]`, codes of zero.
    pub(super) fn initial_stored(&self, n: usize, inits: &[f32]) -> StoredState {
        match self {
            OptimState::F32(_) => StoredState::F32(inits.iter().map(|&x| vec![x; n]).collect()),
            OptimState::Bf16(_) => StoredState::Bf16(inits.iter().map(|&x| vec![quant::bf16_from_f32(x); n]).collect()),
            OptimState::Blockwise8(s) => {
                let k = s.buffers.codes.len();
                StoredState::Blockwise8 {
                    codes: (0..k).map(|i| vec![quant::map_8bit(s.buffers.signed >> i & 1 == 1).zero; n]).collect(),
                    absmax: vec![vec![0.0; s.table.quantized_blocks]; k],
                    small: vec![vec![0.0; s.table.small_len]; k],
                }
            }
            OptimState::Factored(s) if s.bf16() => StoredState::FactoredBf16(vec![0; s.full.state_len]),
            OptimState::Factored(s) => StoredState::Factored(vec![0.0; s.full.state_len]),
            OptimState::Muon(s) if s.bits == OptimBits::B32 => {
                StoredState::F32(s.lens.iter().map(|&l| vec![0.0; l]).collect())
            }
            OptimState::Muon(s) => StoredState::Bf16(s.lens.iter().map(|&l| vec![0; l]).collect()),
        }
    }

    /// Overwrite the state with `stored`; false when `stored` is of another width or has
    /// another number of slots.
    pub(super) fn write_stored(&self, dev: &mut Device, n: usize, stored: &StoredState) -> Result<bool> {
        match (self, stored) {
            (OptimState::F32(s), StoredState::F32(v)) if v.len() == s.slots.len() => s.write(dev, v)?,
            (OptimState::Bf16(s), StoredState::Bf16(v)) if v.len() == s.slots.len() => s.write(dev, n, v)?,
            (OptimState::Blockwise8(s), StoredState::Blockwise8 { codes, absmax, small }) => {
                s.write(dev, n, codes, absmax, small)?
            }
            (OptimState::Factored(s), StoredState::Factored(v)) if !s.bf16() => s.write(dev, v)?,
            (OptimState::Factored(s), StoredState::FactoredBf16(v)) if s.bf16() => s.write_bf16(dev, v)?,
            (OptimState::Muon(s), StoredState::F32(v)) if s.bits == OptimBits::B32 => s.write_f32(dev, v)?,
            (OptimState::Muon(s), StoredState::Bf16(v)) if s.bits == OptimBits::B16 => s.write_bf16(dev, v)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Give the buffers back to the device's pool.
    pub(super) fn release(self, dev: &mut Device) {
        match self {
            OptimState::F32(s) => s.release(dev),
            OptimState::Bf16(s) => s.release(dev),
            OptimState::Blockwise8(s) => s.release(dev),
            OptimState::Factored(s) => s.release(dev),
            OptimState::Muon(s) => s.release(dev),
        }
    }

    /// The block layout at 8 bits (None at 32 and 16).
    pub fn block_table(&self) -> Option<&BlockTable> {
        match self {
            OptimState::Blockwise8(s) => Some(&s.table),
            _ => None,
        }
    }
}
