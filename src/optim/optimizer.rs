//! A running optimizer: its state on the device at f32, bfloat16 or blockwise 8-bit width, the
//! fused step over a parameter arena, and state readback and restore for checkpoints.

use super::config::*;
use super::{Blockwise8, OptimBits, Schedule};
use crate::backend::optim_kernel::*;
use crate::backend::quant::{self, BlockTable};
use crate::backend::Device;
use crate::nn::ParamArena;
use crate::tensor::View;
use anyhow::{bail, ensure, Result};

/// Where an optimizer's state lives on its device, by width.
pub enum OptimState {
    /// One f32 buffer per slot, as long as the arena.
    F32(Vec<View>),
    /// One buffer per slot holding two bfloat16 values per word (whole buffers, in words).
    Bf16(Vec<View>),
    /// Adam's blockwise 8-bit state, and the layout it was built for.
    Blockwise8 {
        /// The buffers the kernels bind.
        buffers: Blockwise8,
        /// Every block of every tensor (the table on the device lists the trainable ones).
        table: BlockTable,
        /// The trainable ranges the device's table was written for.
        uploaded_for: Vec<std::ops::Range<usize>>,
    },
}

/// The state as stored, read back for checkpoints (arena-indexed where per element).
#[derive(Clone, Debug, PartialEq)]
pub enum StoredState {
    /// Each slot's f32 values.
    F32(Vec<Vec<f32>>),
    /// Each slot's bfloat16 bits.
    Bf16(Vec<Vec<u16>>),
    /// exp_avg and exp_avg_sq as codes, absmax per quantized block, and the small tensors'
    /// f32 state (in the order of [`BlockTable::blocks`]).
    Blockwise8 {
        /// Codes per arena element: exp_avg's, exp_avg_sq's.
        codes: [Vec<u8>; 2],
        /// Absmax per quantized block: exp_avg's, exp_avg_sq's.
        absmax: [Vec<f32>; 2],
        /// f32 state of the small tensors: exp_avg's, exp_avg_sq's.
        small: [Vec<f32>; 2],
    },
}

/// An optimizer bound to a device: its configuration, schedule, step count and its state,
/// parallel to the parameter arena.
pub struct Optimizer {
    /// Hyperparameters.
    pub config: OptimConfig,
    /// How the learning rate changes with the step.
    pub schedule: Schedule,
    /// Steps taken so far (PyTorch's `step`).
    pub step: u64,
    /// Parameters updated (the arena's length, padding included).
    pub n: usize,
    /// The state buffers.
    pub state: OptimState,
}

impl Optimizer {
    /// An optimizer for every tensor of `arena`, its state zeroed (or PyTorch's initial value).
    /// At 8 bits each tensor is quantized in blocks of its own; tensors under
    /// `quant::MIN_8BIT_SIZE` elements keep f32 state.
    pub fn new(dev: &mut Device, arena: &ParamArena, config: OptimConfig, schedule: Schedule) -> Result<Optimizer> {
        let tensors: Vec<(usize, usize)> = arena.entries.iter().map(|e| (e.offset, e.len())).collect();
        Optimizer::build(dev, config, schedule, arena.len(), &tensors)
    }

    /// An optimizer for a flat buffer of `n` parameters (benchmarks, replays), stepped with
    /// [`Optimizer::step_views`]: one tensor (quantized at 8 bits when `n` reaches
    /// `quant::MIN_8BIT_SIZE`).
    pub fn for_len(dev: &mut Device, config: OptimConfig, schedule: Schedule, n: usize) -> Result<Optimizer> {
        Optimizer::build(dev, config, schedule, n, &[(0, n)])
    }

    /// An optimizer for flat buffers of `n` parameters holding tensors at `(offset, len)`
    /// (offsets multiples of 4): at 8 bits each tensor is quantized in blocks of its own.
    pub fn for_tensors(
        dev: &mut Device,
        config: OptimConfig,
        schedule: Schedule,
        n: usize,
        tensors: &[(usize, usize)],
    ) -> Result<Optimizer> {
        ensure!(
            tensors.iter().all(|&(at, len)| at % 4 == 0 && at + len <= n),
            "tensors must start at multiples of 4 and end within the {n} parameters"
        );
        Optimizer::build(dev, config, schedule, n, tensors)
    }

    fn build(
        dev: &mut Device,
        config: OptimConfig,
        schedule: Schedule,
        n: usize,
        tensors: &[(usize, usize)],
    ) -> Result<Optimizer> {
        config.validate()?;
        let slots = config.state_names().len();
        let init = config.state_init();
        let state = match config.optim_bits() {
            OptimBits::B32 => {
                let mut v = Vec::new();
                for _ in 0..slots {
                    let s = dev.alloc(n)?;
                    dev.fill(s, init);
                    v.push(s);
                }
                OptimState::F32(v)
            }
            OptimBits::B16 => {
                let h = quant::bf16_from_f32(init) as u32;
                let mut v = Vec::new();
                for _ in 0..slots {
                    let s = dev.alloc(n.div_ceil(2))?;
                    dev.fill(s, f32::from_bits(h | h << 16));
                    v.push(s);
                }
                OptimState::Bf16(v)
            }
            OptimBits::B8 => {
                let table = BlockTable::new(tensors, n);
                let zeros = |c: u8| f32::from_bits(u32::from_le_bytes([c; 4]));
                let m_codes = dev.alloc(table.code_words())?;
                dev.fill(m_codes, zeros(quant::DynamicMap::signed().zero));
                let v_codes = dev.alloc(table.code_words())?;
                dev.fill(v_codes, zeros(quant::DynamicMap::unsigned().zero));
                let absmax = dev.alloc_zeroed(2 * table.quantized_blocks)?;
                let small = dev.alloc_zeroed(2 * table.small_len)?;
                let words = table.words();
                let table_view = dev.alloc(words.len())?;
                let buffers = Blockwise8 {
                    m_codes,
                    v_codes,
                    absmax,
                    small,
                    table: table_view,
                    rows: std::sync::Arc::new(table.blocks.clone()),
                    quantized_blocks: table.quantized_blocks,
                    small_len: table.small_len,
                };
                let values: Vec<f32> = words.into_iter().map(f32::from_bits).collect();
                dev.write(table_view, &values)?;
                OptimState::Blockwise8 { buffers, table, uploaded_for: std::iter::once(0..n).collect() }
            }
        };
        Ok(Optimizer { config, schedule, step: 0, n, state })
    }

    /// The learning rate used for step index `t` (0-based).
    pub fn lr_at(&self, t: u64) -> f64 {
        self.schedule.lr(self.config.lr(), t)
    }

    /// One step over `arena` from the gradients in it: a single fused kernel launch (at 32 and
    /// 16 bits one per run of trainable tensors when some are frozen; at 8 bits one, over the
    /// trainable tensors' blocks).
    pub fn step(&mut self, dev: &mut Device, arena: &ParamArena) -> Result<()> {
        ensure!(
            arena.len() == self.n,
            "this optimizer was built for {} parameters, the arena holds {} (build it with Optimizer::new from the same arena)",
            self.n,
            arena.len()
        );
        let ranges = arena.trainable_ranges();
        self.step_ranges(dev, arena.params, arena.grads, &ranges)
    }

    /// One fused step over flat `params` and `grads` of the length the optimizer was built for.
    pub fn step_views(&mut self, dev: &mut Device, params: View, grads: View) {
        debug_assert!(params.len == self.n && grads.len == self.n);
        let n = self.n;
        let whole: Vec<std::ops::Range<usize>> = std::iter::once(0..n).collect();
        if let Err(e) = self.step_ranges(dev, params, grads, &whole) {
            unreachable!("a flat step has nothing to check: {e}");
        }
    }

    /// One step over the parts `ranges` of flat `params` and `grads` (the length the optimizer
    /// was built for): one launch per range at 32 and 16 bits (16: ranges start at even
    /// offsets), one over the ranges' blocks at 8.
    pub fn step_ranges(
        &mut self,
        dev: &mut Device,
        params: View,
        grads: View,
        ranges: &[std::ops::Range<usize>],
    ) -> Result<()> {
        ensure!(
            ranges.iter().all(|r| r.end <= self.n),
            "a range past the {} parameters this optimizer was built for",
            self.n
        );
        if matches!(self.state, OptimState::Bf16(_)) {
            ensure!(ranges.iter().all(|r| r.start % 2 == 0), "bfloat16 state is stepped from even offsets");
        }
        let k = self.next_step();
        match &mut self.state {
            OptimState::F32(slots) => {
                for r in ranges {
                    let s: Vec<View> = slots.iter().map(|v| v.slice(r.start, r.len())).collect();
                    dev.optim_step(&k, params.slice(r.start, r.len()), grads.slice(r.start, r.len()), &s);
                }
            }
            OptimState::Bf16(slots) => {
                for r in ranges {
                    let s: Vec<View> =
                        slots.iter().map(|v| View { buf: v.buf, offset: r.start, len: r.len() }).collect();
                    dev.optim_step_bf16(&k, params.slice(r.start, r.len()), grads.slice(r.start, r.len()), &s);
                }
            }
            OptimState::Blockwise8 { buffers, table, uploaded_for } => {
                let OptimStep::Adam(h) = k else { unreachable!("validate allows 8 bits for adam and adamw only") };
                if uploaded_for.as_slice() != ranges {
                    // Some tensors were frozen or unfrozen: list the trainable tensors' blocks.
                    let inside = |b: &quant::Block| ranges.iter().any(|r| r.contains(&b.start));
                    let rows =
                        BlockTable { blocks: table.blocks.iter().copied().filter(inside).collect(), ..table.clone() };
                    let values: Vec<f32> = rows.words().into_iter().map(f32::from_bits).collect();
                    dev.write(buffers.table.slice(0, values.len()), &values)?;
                    buffers.rows = std::sync::Arc::new(rows.blocks);
                    *uploaded_for = ranges.to_vec();
                }
                dev.adam_step_8bit(&h, params, grads, buffers);
            }
        }
        Ok(())
    }

    /// Count a step and compute its kernel scalars.
    fn next_step(&mut self) -> OptimStep {
        let lr = self.lr_at(self.step);
        self.step += 1;
        self.config.kernel_step(self.step, lr)
    }

    /// Give the state buffers back to the device's pool.
    pub fn release(self, dev: &mut Device) {
        match self.state {
            OptimState::F32(v) | OptimState::Bf16(v) => v.into_iter().for_each(|v| dev.release(v)),
            OptimState::Blockwise8 { buffers: b, .. } => {
                for v in [b.m_codes, b.v_codes, b.absmax, b.small, b.table] {
                    dev.release(v);
                }
            }
        }
    }

    /// The state as PyTorch's `state_dict()` names it, as f32 values per arena element
    /// (bfloat16 and 8-bit state dequantized; padding 0). At 8 bits two more entries follow
    /// when some tensor is quantized: `exp_avg_absmax` and `exp_avg_sq_absmax`, one value per
    /// quantized block.
    pub fn read_state(&self, dev: &mut Device) -> Result<Vec<(&'static str, Vec<f32>)>> {
        crate::backend::wait(self.read_state_async(dev))
    }

    /// [`Optimizer::read_state`] as a future (for a browser's WebGPU device).
    pub async fn read_state_async(&self, dev: &mut Device) -> Result<Vec<(&'static str, Vec<f32>)>> {
        let names = self.config.state_names();
        Ok(match self.read_stored_async(dev).await? {
            StoredState::F32(v) => names.into_iter().zip(v).collect(),
            StoredState::Bf16(v) => {
                names.into_iter().zip(v).map(|(n, h)| (n, h.into_iter().map(quant::bf16_to_f32).collect())).collect()
            }
            StoredState::Blockwise8 { codes, absmax, small } => {
                let OptimState::Blockwise8 { table, .. } = &self.state else { unreachable!("8-bit state") };
                let maps = [quant::DynamicMap::signed(), quant::DynamicMap::unsigned()];
                let mut out = Vec::new();
                for k in 0..2 {
                    let mut v = vec![0f32; self.n];
                    for b in &table.blocks {
                        let r = b.start..b.start + b.len;
                        match b.kind {
                            quant::BlockKind::Quantized => {
                                for i in r {
                                    v[i] = maps[k].decode(codes[k][i], absmax[k][b.index]);
                                }
                            }
                            quant::BlockKind::Full => v[r].copy_from_slice(&small[k][b.index..b.index + b.len]),
                        }
                    }
                    out.push((names[k], v));
                }
                if table.quantized_blocks > 0 {
                    let [ma, va] = absmax;
                    out.push(("exp_avg_absmax", ma));
                    out.push(("exp_avg_sq_absmax", va));
                }
                out
            }
        })
    }

    /// The state as a new optimizer of this configuration and layout holds it (every slot at
    /// its initial value, codes of zero), built on the host: what a checkpoint's tensors are
    /// written into before [`Optimizer::write_stored`].
    pub fn initial_stored(&self) -> StoredState {
        let (slots, init) = (self.config.state_names().len(), self.config.state_init());
        match &self.state {
            OptimState::F32(_) => StoredState::F32(vec![vec![init; self.n]; slots]),
            OptimState::Bf16(_) => StoredState::Bf16(vec![vec![quant::bf16_from_f32(init); self.n]; slots]),
            OptimState::Blockwise8 { table, .. } => StoredState::Blockwise8 {
                codes: [quant::DynamicMap::signed().zero, quant::DynamicMap::unsigned().zero].map(|z| vec![z; self.n]),
                absmax: [vec![0.0; table.quantized_blocks], vec![0.0; table.quantized_blocks]],
                small: [vec![0.0; table.small_len], vec![0.0; table.small_len]],
            },
        }
    }

    /// The state exactly as stored (checkpoints keep these bits).
    pub fn read_stored(&self, dev: &mut Device) -> Result<StoredState> {
        crate::backend::wait(self.read_stored_async(dev))
    }

    /// [`Optimizer::read_stored`] as a future (for a browser's WebGPU device).
    pub async fn read_stored_async(&self, dev: &mut Device) -> Result<StoredState> {
        let bits = |v: Vec<f32>| -> Vec<u32> { v.into_iter().map(f32::to_bits).collect() };
        Ok(match &self.state {
            OptimState::F32(slots) => {
                let mut out = Vec::new();
                for &v in slots {
                    out.push(dev.read_async(v).await?);
                }
                StoredState::F32(out)
            }
            OptimState::Bf16(slots) => {
                let mut out = Vec::new();
                for &v in slots {
                    let words = bits(dev.read_async(v).await?);
                    let mut h: Vec<u16> = words.iter().flat_map(|w| [*w as u16, (*w >> 16) as u16]).collect();
                    h.truncate(self.n);
                    out.push(h);
                }
                StoredState::Bf16(out)
            }
            OptimState::Blockwise8 { buffers: b, .. } => {
                let mut codes = [Vec::new(), Vec::new()];
                for (k, v) in [b.m_codes, b.v_codes].into_iter().enumerate() {
                    let words = bits(dev.read_async(v).await?);
                    let mut c: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                    c.truncate(self.n);
                    codes[k] = c;
                }
                let split = |mut v: Vec<f32>, half: usize| {
                    v.truncate(2 * half);
                    let second = v.split_off(half);
                    [v, second]
                };
                let absmax = split(dev.read_async(b.absmax).await?, b.quantized_blocks);
                let small = split(dev.read_async(b.small).await?, b.small_len);
                StoredState::Blockwise8 { codes, absmax, small }
            }
        })
    }

    /// Overwrite the state with `stored` (from [`Optimizer::read_stored`] of an optimizer of
    /// the same configuration and layout).
    pub fn write_stored(&mut self, dev: &mut Device, stored: &StoredState) -> Result<()> {
        let floats = |w: &[u32]| -> Vec<f32> { w.iter().map(|&x| f32::from_bits(x)).collect() };
        match (&self.state, stored) {
            (OptimState::F32(slots), StoredState::F32(v)) if v.len() == slots.len() => {
                for (&s, data) in slots.iter().zip(v) {
                    dev.write(s, data)?;
                }
            }
            (OptimState::Bf16(slots), StoredState::Bf16(v)) if v.len() == slots.len() => {
                for (&s, h) in slots.iter().zip(v) {
                    ensure!(h.len() == self.n, "bf16 state of {} values for {} parameters", h.len(), self.n);
                    let words: Vec<u32> =
                        h.chunks(2).map(|p| p[0] as u32 | (p.get(1).copied().unwrap_or(0) as u32) << 16).collect();
                    dev.write(s, &floats(&words))?;
                }
            }
            (OptimState::Blockwise8 { buffers: b, .. }, StoredState::Blockwise8 { codes, absmax, small }) => {
                for (v, c) in [b.m_codes, b.v_codes].into_iter().zip(codes) {
                    ensure!(c.len() == self.n, "8-bit codes for {} values, {} parameters", c.len(), self.n);
                    let mut c = c.clone();
                    c.resize(4 * v.len, 0);
                    let words: Vec<u32> =
                        c.chunks_exact(4).map(|x| u32::from_le_bytes(x.try_into().expect("4 bytes"))).collect();
                    dev.write(v, &floats(&words))?;
                }
                let join = |pair: &[Vec<f32>; 2], len: usize, what: &str| -> Result<Vec<f32>> {
                    ensure!(pair.iter().all(|x| x.len() == len), "{what}: {} values, expected {len}", pair[0].len());
                    let mut all = [pair[0].as_slice(), pair[1].as_slice()].concat();
                    all.resize(all.len().max(1), 0.0);
                    Ok(all)
                };
                dev.write(b.absmax, &join(absmax, b.quantized_blocks, "absmax")?)?;
                dev.write(b.small, &join(small, b.small_len, "small-tensor state")?)?;
            }
            _ => bail!(
                "the stored state is of another width or has other slots than this {}-bit {} optimizer",
                self.config.optim_bits().bits(),
                self.config.name()
            ),
        }
        Ok(())
    }

    /// The block layout at 8 bits (None at 32 and 16).
    pub fn block_table(&self) -> Option<&BlockTable> {
        match &self.state {
            OptimState::Blockwise8 { table, .. } => Some(table),
            _ => None,
        }
    }
}
