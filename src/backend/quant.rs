//! Optimizer state in fewer bits: bfloat16 rounding and bitsandbytes' blockwise 8-bit
//! quantization (dynamic code maps, one absmax per block of [`BLOCK`] elements).
//!
//! These are the facts both backends share: the maps (built here from bitsandbytes'
//! `create_dynamic_map` rule, in f32, never pasted), the nearest-code rule, the block layout
//! of a parameter arena and the state's byte counts. The WGSL kernel reads the same maps and
//! thresholds from the block table the host uploads (see [`BlockTable`]).

use std::sync::OnceLock;

/// Elements per 8-bit block: one f32 absmax each (bitsandbytes' blocksize since 0.44).
pub const BLOCK: usize = 256;

/// Tensors with fewer elements keep f32 state in 8-bit mode (bitsandbytes' `min_8bit_size`).
pub const MIN_8BIT_SIZE: usize = 4096;

/// Whether a tensor of `len` elements gets 8-bit state (else f32, as bitsandbytes' small
/// tensors).
pub fn is_quantized(len: usize) -> bool {
    len >= MIN_8BIT_SIZE
}

/// `x` rounded to the nearest bfloat16, ties to even (the upper 16 bits of an f32). Branch
/// free, so loops of it vectorize; a quiet NaN (what arithmetic makes) stays NaN.
#[inline(always)]
pub fn bf16_from_f32(x: f32) -> u16 {
    let b = x.to_bits();
    (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// A bfloat16 widened to f32 (exact).
#[inline(always)]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// bfloat16 values packed two a 32-bit word as device buffers hold them (value 2i in the low
/// half of word i, 2i + 1 in the high half; an odd count's last high half 0), as the f32
/// values `Device::write` takes.
pub fn bf16_words(h: &[u16]) -> Vec<f32> {
    h.chunks(2).map(|p| f32::from_bits(p[0] as u32 | (p.get(1).copied().unwrap_or(0) as u32) << 16)).collect()
}

/// The first `n` bfloat16 values of words read back from a device buffer ([`bf16_words`]'s
/// inverse).
pub fn bf16_from_words(words: &[f32], n: usize) -> Vec<u16> {
    let mut h: Vec<u16> = words.iter().flat_map(|w| [w.to_bits() as u16, (w.to_bits() >> 16) as u16]).collect();
    h.truncate(n);
    h
}

/// `torch.linspace(start, end, steps, dtype=torch.float32)` as PyTorch's CPU kernel computes
/// it: an f32 step, the first half counted up from `start`, the second half down from `end`,
/// each a fused multiply-add (the compiler contracts `start + step * i` in PyTorch's build;
/// plain multiply-then-add gives some of bitsandbytes' values one unit off in the last place).
fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| if i < half { step.mul_add(i as f32, start) } else { (-step).mul_add((steps - i - 1) as f32, end) })
        .collect()
}

/// One of bitsandbytes' dynamic code maps: 256 sorted values in [-1, 1], and the thresholds
/// between neighbours that the nearest-code rule compares with.
pub struct DynamicMap {
    /// The code's value for each of the 256 codes, ascending.
    pub values: [f32; 256],
    /// `thresholds[k]`: the smallest f32 at or above the exact midpoint of `values[k]` and
    /// `values[k + 1]`; `thresholds[255]` is +∞. A value's code is how many thresholds are at or
    /// below it: the nearest value, ties to the larger index.
    pub thresholds: [f32; 256],
    /// The code of 0.
    pub zero: u8,
    /// Whether negative values have codes (exp_avg) or not (exp_avg_sq).
    pub signed: bool,
    /// For each bucket of f32 bit patterns (see [`DynamicMap::bucket`]): the count of
    /// thresholds below the bucket (low 16 bits) and the low 15 bits of the one threshold inside
    /// it (high 16 bits; 0x8000 when there is none, which no value reaches). A bucket holds at
    /// most one threshold, so one lookup and one integer comparison give the code.
    buckets: Box<[u32; BUCKETS]>,
}

/// Buckets are the top 17 bits of an order-preserving transform of the f32's bits, offset so
/// that [-1, 1] starts at 0.
pub(crate) const BUCKET_SHIFT: u32 = 15;
pub(crate) const BUCKET_BASE: u32 = 0x8000;
pub(crate) const BUCKETS: usize = 0x1_0000;
/// The bits of an ordered f32 below its bucket.
pub(crate) const LOW_MASK: u32 = (1 << BUCKET_SHIFT) - 1;

/// An f32's bits mapped to an unsigned integer that orders like the value (branch free).
#[inline(always)]
fn ordered(x: f32) -> u32 {
    let b = x.to_bits();
    b ^ (((b as i32 >> 31) as u32) | 0x8000_0000)
}

/// The inverse of [`ordered`].
fn unordered(u: u32) -> f32 {
    f32::from_bits(if u & 0x8000_0000 != 0 { u & 0x7FFF_FFFF } else { !u })
}

/// [`DynamicMap::code`] from its tables, for a map known to be signed or not. The sign rule
/// needs no lookup: in a map with 0 at code `zero`, the codes below it are the negative values
/// and those above it the positive ones.
#[inline(always)]
pub(crate) fn code_in<const SIGNED: bool>(buckets: &[u32; BUCKETS], zero: u8, x: f32) -> u8 {
    let o = ordered(x.clamp(-1.0, 1.0));
    let e = buckets[((o >> BUCKET_SHIFT) - BUCKET_BASE) as u16 as usize];
    // One threshold at most inside the bucket: one comparison finishes the count.
    let c = (e & 0xFFFF) as u8 + ((o & LOW_MASK) >= e >> 16) as u8;
    if !SIGNED {
        return c;
    }
    c + (x > 0.0 && c < zero) as u8 - (x < 0.0 && c > zero) as u8
}

impl DynamicMap {
    /// `create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)`, in f32 and sorted.
    ///
    /// For each decade i = 0..6 (scale 10^(i−6)): the midpoints of `linspace(0.1, 1, n)` with
    /// n = 2^i + 1 (signed: each with both signs) or 2^(i+1) + 1 (unsigned), times the scale.
    /// Then 0 and 1.0.
    fn build(signed: bool) -> DynamicMap {
        let mut data: Vec<f32> = Vec::with_capacity(256);
        for i in 0..7 {
            let n = if signed { (1 << i) + 1 } else { (1 << (i + 1)) + 1 };
            let b = linspace_f32(0.1, 1.0, n);
            let scale = 10f64.powi(i - 6) as f32;
            for w in b.windows(2) {
                let mean = (w[0] + w[1]) / 2.0;
                data.push(scale * mean);
                if signed {
                    data.push(-(scale * mean));
                }
            }
        }
        data.push(0.0);
        data.push(1.0);
        assert_eq!(data.len(), 256, "bitsandbytes' 8-bit maps have 256 codes");
        data.sort_by(f32::total_cmp);
        let values: [f32; 256] = data.try_into().expect("256 values");
        let mut thresholds = [f32::INFINITY; 256];
        for k in 0..255 {
            // The exact midpoint (f64 holds it exactly), rounded up to an f32.
            let mid = (values[k] as f64 + values[k + 1] as f64) / 2.0;
            let mut t = mid as f32;
            if (t as f64) < mid {
                t = f32::from_bits(ordered_next(t));
            }
            thresholds[k] = t;
        }
        let zero = values.iter().position(|&v| v == 0.0).expect("0 has a code") as u8;
        let mut buckets = Box::new([0u32; BUCKETS]);
        for (k, slot) in buckets.iter_mut().enumerate() {
            let start = ((k as u32) + BUCKET_BASE) << BUCKET_SHIFT;
            let below = thresholds[..255].iter().filter(|&&t| ordered(t) < start).count() as u32;
            let inside = thresholds[..255].iter().find(|&&t| ordered(t) >> BUCKET_SHIFT == start >> BUCKET_SHIFT);
            let low = inside.map_or(0x8000, |&t| ordered(t) & LOW_MASK);
            *slot = below | low << 16;
        }
        DynamicMap { values, thresholds, zero, signed, buckets }
    }

    /// The signed map (exp_avg): 127 negative values, 0 at code 127, 1.0 at code 255.
    pub fn signed() -> &'static DynamicMap {
        static MAP: OnceLock<DynamicMap> = OnceLock::new();
        MAP.get_or_init(|| DynamicMap::build(true))
    }

    /// The unsigned map (exp_avg_sq): 0 at code 0, then 254 positive values and 1.0.
    pub fn unsigned() -> &'static DynamicMap {
        static MAP: OnceLock<DynamicMap> = OnceLock::new();
        MAP.get_or_init(|| DynamicMap::build(false))
    }

    /// Which bucket `x` (in [-1, 1]) falls in.
    #[cfg(test)]
    fn bucket(x: f32) -> u16 {
        ((ordered(x) >> BUCKET_SHIFT) - BUCKET_BASE) as u16
    }

    /// The code of `x`, a value already divided by its block's absmax: the nearest value (ties
    /// to the larger code), then bitsandbytes' sign rule for the signed map (a code whose sign
    /// differs from the value's moves one step toward it). `x` is clamped to [-1, 1] first.
    #[inline(always)]
    pub fn code(&self, x: f32) -> u8 {
        if self.signed {
            code_in::<true>(&self.buckets, self.zero, x)
        } else {
            code_in::<false>(&self.buckets, self.zero, x)
        }
    }

    /// The bucket table [`DynamicMap::code`] reads, for a backend's vectorised coder.
    pub(crate) fn buckets(&self) -> &[u32; BUCKETS] {
        &self.buckets
    }

    /// The value of code `c` in a block of `absmax`.
    #[inline(always)]
    pub fn decode(&self, c: u8, absmax: f32) -> f32 {
        self.values[c as usize] * absmax
    }
}

/// The next f32 above `t` (for positive and negative finite values).
fn ordered_next(t: f32) -> u32 {
    unordered(ordered(t) + 1).to_bits()
}

/// What kind of state a block of the table keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BlockKind {
    /// 8-bit codes plus one absmax per block (`index` is the block's absmax slot).
    Quantized = 0,
    /// f32 state of a small tensor (`index` is the offset of the block's first element in the
    /// small-state region).
    Full = 1,
}

/// One row of the block table: up to [`BLOCK`] consecutive elements of one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// First arena element.
    pub start: usize,
    /// Elements (1..=BLOCK).
    pub len: usize,
    /// Absmax slot ([`BlockKind::Quantized`]) or small-state offset ([`BlockKind::Full`]).
    pub index: usize,
    /// How its state is stored.
    pub kind: BlockKind,
}

/// The layout of blockwise 8-bit state over a parameter arena: which elements form each
/// block, which blocks are quantized, and how large each region is. Blocks never straddle
/// tensors; tensors under [`MIN_8BIT_SIZE`] elements keep f32 state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTable {
    /// Every block of every tensor, in arena order.
    pub blocks: Vec<Block>,
    /// Absmax slots (quantized blocks).
    pub quantized_blocks: usize,
    /// Elements with f32 state.
    pub small_len: usize,
    /// Arena elements covered (codes are stored per arena element).
    pub arena_len: usize,
}

/// Where one tensor's 8-bit-mode state lives (see [`BlockTable::tensor_state`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TensorState {
    /// Codes per element, and these absmax slots, one per block.
    Quantized(std::ops::Range<usize>),
    /// f32 state at this range of the small-state region.
    Full(std::ops::Range<usize>),
}

/// Bytes of 8-bit state of `slots` slots for an arena of `arena_len` elements with
/// `quantized_blocks` blocks and `small_len` elements of f32 state: per slot a code region (a
/// byte per element, whole words), an absmax per block and an f32 per small element.
fn layout_bytes(slots: usize, arena_len: usize, quantized_blocks: usize, small_len: usize) -> u64 {
    (slots * (4 * arena_len.div_ceil(4) + 4 * quantized_blocks + 4 * small_len)) as u64
}

/// [`BlockTable::state_bytes`] of one tensor of `n` elements, without building its table.
pub fn state_bytes_8bit(n: usize, slots: usize) -> u64 {
    if is_quantized(n) {
        layout_bytes(slots, n, n.div_ceil(BLOCK), 0)
    } else {
        layout_bytes(slots, n, 0, n)
    }
}

/// The map a slot's codes use: bitsandbytes' signed or unsigned dynamic map.
pub fn map_8bit(signed: bool) -> &'static DynamicMap {
    if signed {
        DynamicMap::signed()
    } else {
        DynamicMap::unsigned()
    }
}

/// Words of the table's header on the GPU: the signed map, its thresholds, the unsigned map,
/// its thresholds (256 f32 each).
pub const TABLE_HEADER_WORDS: usize = 4 * 256;

impl BlockTable {
    /// The table for tensors at `(offset, len)` of an arena of `arena_len` elements. Offsets
    /// must be multiples of 4 (one 32-bit word of codes belongs to one tensor).
    pub fn new(tensors: &[(usize, usize)], arena_len: usize) -> BlockTable {
        let mut blocks = Vec::new();
        let (mut q, mut small) = (0, 0);
        for &(offset, len) in tensors {
            debug_assert!(offset.is_multiple_of(4) && offset + len <= arena_len);
            let quantized = is_quantized(len);
            for at in (0..len).step_by(BLOCK) {
                let n = BLOCK.min(len - at);
                let (index, kind) = if quantized {
                    q += 1;
                    (q - 1, BlockKind::Quantized)
                } else {
                    small += n;
                    (small - n, BlockKind::Full)
                };
                blocks.push(Block { start: offset + at, len: n, index, kind });
            }
        }
        BlockTable { blocks, quantized_blocks: q, small_len: small, arena_len }
    }

    /// Where the state of the tensor at arena `offset` (of `len` elements) lives: its absmax
    /// slots, or its place in the small-state region (None: no tensor starts there).
    pub fn tensor_state(&self, offset: usize, len: usize) -> Option<TensorState> {
        let first = self.blocks.iter().find(|b| b.start == offset)?;
        Some(match first.kind {
            BlockKind::Quantized => TensorState::Quantized(first.index..first.index + len.div_ceil(BLOCK)),
            BlockKind::Full => TensorState::Full(first.index..first.index + len),
        })
    }

    /// Words of one code region (one byte per arena element, four to a word).
    pub fn code_words(&self) -> usize {
        self.arena_len.div_ceil(4)
    }

    /// Bytes of the state of `slots` slots: per slot a code region, an absmax per quantized
    /// block, an f32 per small element.
    pub fn state_bytes(&self, slots: usize) -> u64 {
        layout_bytes(slots, self.arena_len, self.quantized_blocks, self.small_len)
    }

    /// The table as the GPU kernel reads it: the maps and thresholds, then `[start, len, index,
    /// kind]` per block, all as 32-bit words.
    pub fn words(&self) -> Vec<u32> {
        let (s, u) = (DynamicMap::signed(), DynamicMap::unsigned());
        let mut w: Vec<u32> = Vec::with_capacity(TABLE_HEADER_WORDS + 4 * self.blocks.len());
        for arr in [&s.values, &s.thresholds, &u.values, &u.thresholds] {
            w.extend(arr.iter().map(|v| v.to_bits()));
        }
        for b in &self.blocks {
            w.extend([b.start as u32, b.len as u32, b.index as u32, b.kind as u32]);
        }
        w
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn bf16_words_pack_two_a_word_low_half_first() {
        let h = [0x3F80, 0xC000, 0x1234];
        let words = bf16_words(&h);
        assert_eq!(words.iter().map(|w| w.to_bits()).collect::<Vec<_>>(), [0xC000_3F80, 0x0000_1234]);
        assert_eq!(bf16_from_words(&words, 3), h);
        assert!(bf16_words(&[]).is_empty());
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf16_from_f32(1.0), 0x3F80);
        // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
        assert_eq!(bf16_from_f32(1.0 + 2f32.powi(-8)), 0x3F80);
        // 1 + 3·2^-8 is halfway between 1.0078125 (odd) and 1.015625 (even): up.
        assert_eq!(bf16_from_f32(1.0 + 3.0 * 2f32.powi(-8)), 0x3F82);
        assert_eq!(bf16_from_f32(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 0x3F81);
        assert_eq!(bf16_to_f32(bf16_from_f32(-2.5)), -2.5);
        assert_eq!(bf16_from_f32(f32::MAX), 0x7F80, "overflow rounds to infinity");
        assert!(bf16_to_f32(bf16_from_f32(f32::NAN)).is_nan());
        assert!(bf16_to_f32(bf16_from_f32(-f32::NAN)).is_nan());
    }

    #[test]
    fn maps_follow_bitsandbytes_rule() {
        let s = DynamicMap::signed();
        let u = DynamicMap::unsigned();
        assert!(s.values.windows(2).all(|w| w[0] < w[1]), "signed map strictly ascending");
        assert!(u.values.windows(2).all(|w| w[0] < w[1]), "unsigned map strictly ascending");
        assert_eq!((s.zero, u.zero), (127, 0));
        assert_eq!((s.values[255], u.values[255]), (1.0, 1.0));
        // Independently, in f64: the signed map's smallest magnitude is 1e-6·(0.1 + 1)/2, its
        // most negative value −(0.1 + 0.9·(63.5/64)), the unsigned map's second value
        // 1e-6·(0.1 + 0.9·0.25).
        let close = |a: f32, b: f64| ((a as f64 - b) / b).abs() < 1e-6;
        assert!(close(s.values[128], 0.55e-6), "{}", s.values[128]);
        assert!(close(-s.values[0], 0.1 + 0.9 * (63.5 / 64.0)), "{}", s.values[0]);
        assert!(close(u.values[1], 1e-6 * (0.1 + 0.9 * 0.25)), "{}", u.values[1]);
        assert!(close(u.values[254], 0.1 + 0.9 * (127.5 / 128.0)), "{}", u.values[254]);
        assert_eq!(s.values.iter().filter(|&&v| v < 0.0).count(), 127);
    }

    /// The exhaustive definition: nearest value, ties to the larger code.
    /// The nearest value's code by exact distances in f64 (ties to the larger code).
    pub(crate) fn nearest(map: &DynamicMap, x: f32) -> u8 {
        let mut best = 0;
        for k in 0..256 {
            let (d, db) = ((x as f64 - map.values[k] as f64).abs(), (x as f64 - map.values[best] as f64).abs());
            if d <= db {
                best = k;
            }
        }
        best as u8
    }

    #[test]
    fn codes_are_the_nearest_value() {
        for map in [DynamicMap::signed(), DynamicMap::unsigned()] {
            let lo = if map.signed { -1.0 } else { 0.0 };
            let mut probes: Vec<f32> = Vec::new();
            for k in 0..256 {
                let v = map.values[k];
                probes.extend([v, f32::from_bits(v.to_bits() + 1), f32::from_bits(v.to_bits().saturating_sub(1))]);
                if k < 255 {
                    let t = map.thresholds[k];
                    probes.extend([t, unordered(ordered(t) - 1)]);
                }
            }
            let mut r = crate::rng::Rng::new(7);
            for _ in 0..20_000 {
                let e = -(r.below(12) as i32);
                probes.push(lo + (1.0 - lo) * r.uniform(0.0, 1.0) as f32 * 10f32.powi(e));
            }
            for x in probes.into_iter().filter(|x| (lo..=1.0).contains(x)) {
                assert_eq!(map.code(x), nearest(map, x), "x = {x:e} (signed: {})", map.signed);
            }
        }
    }

    #[test]
    fn a_bucket_holds_at_most_one_threshold() {
        for map in [DynamicMap::signed(), DynamicMap::unsigned()] {
            for k in 0..255 {
                let b = DynamicMap::bucket(map.thresholds[k]);
                let next = DynamicMap::bucket(map.thresholds[k + 1].min(1.0));
                assert!(k == 254 || next > b, "thresholds {k} and {} share a bucket", k + 1);
            }
        }
    }

    #[test]
    fn blocks_never_straddle_tensors() {
        let t = BlockTable::new(&[(0, 4097), (4160, 10), (4224, 300)], 4544);
        assert_eq!(t.quantized_blocks, 17, "4097 elements: 16 full blocks and one of 1");
        assert_eq!(t.blocks[16], Block { start: 4096, len: 1, index: 16, kind: BlockKind::Quantized });
        assert_eq!(t.blocks[17], Block { start: 4160, len: 10, index: 0, kind: BlockKind::Full });
        assert_eq!(t.blocks[19], Block { start: 4224 + 256, len: 44, index: 266, kind: BlockKind::Full });
        assert_eq!(t.small_len, 310);
        // 1e8 parameters in one tensor: about 203 MB of state.
        let big = BlockTable::new(&[(0, 100_000_000)], 100_000_000);
        assert_eq!(big.state_bytes(2), 200_000_000 + 8 * 390_625);
        for n in [1, 4095, 4096, 4097, 100_000_000] {
            for slots in 1..=3 {
                assert_eq!(state_bytes_8bit(n, slots), BlockTable::new(&[(0, n)], n).state_bytes(slots), "n = {n}");
            }
        }
    }
}
