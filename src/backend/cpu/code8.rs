//! The CPU's 8-bit coder: [`DynamicMap::code`] over a whole block, eight values at a time
//! where the CPU has AVX2 (the same comparisons as the scalar rule in `quant`, so the same
//! codes).

use crate::backend::quant::{code_in, DynamicMap, BUCKETS};
#[cfg(target_arch = "x86_64")]
use crate::backend::quant::{BUCKET_BASE, BUCKET_SHIFT, LOW_MASK};

/// [`DynamicMap::code`] with the tables in hand: borrowed once for a loop (so the loop does not
/// reload them after every store), for a map known to be signed or not.
#[derive(Clone, Copy)]
pub struct Coder<'a, const SIGNED: bool> {
    buckets: &'a [u32; BUCKETS],
    zero: u8,
}

impl<'a, const SIGNED: bool> Coder<'a, SIGNED> {
    /// The tables of `map`, which must be signed exactly when `SIGNED` is.
    #[inline(always)]
    pub fn new(map: &'a DynamicMap) -> Coder<'a, SIGNED> {
        debug_assert_eq!(map.signed, SIGNED);
        Coder { buckets: map.buckets(), zero: map.zero }
    }

    /// See [`DynamicMap::code`].
    #[inline(always)]
    pub fn code(self, x: f32) -> u8 {
        code_in::<SIGNED>(self.buckets, self.zero, x)
    }

    /// `out[i] = self.code(xs[i])` for every element, eight at a time where the CPU has AVX2
    /// (the same comparisons, so the same codes).
    #[inline(always)]
    pub fn codes(self, xs: &[f32], out: &mut [u8]) {
        let n = xs.len().min(out.len());
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512 F/BW/VL, or AVX2 (checked at run time).
        let done = if crate::backend::host::has_avx512() {
            unsafe { self.codes_avx512(&xs[..n], &mut out[..n]) }
        } else if crate::backend::host::has_avx2_fma() {
            unsafe { self.codes_avx2(&xs[..n], &mut out[..n]) }
        } else {
            0
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        for (c, &x) in out[done..n].iter_mut().zip(&xs[done..n]) {
            *c = self.code(x);
        }
    }

    /// [`Coder::code`] over whole groups of sixteen: one gather for the bucket lookups, the
    /// comparisons as masks, the codes narrowed and stored in one instruction (the same
    /// comparisons as [`Coder::codes_avx2`], so the same codes). Returns how many elements it
    /// coded.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn codes_avx512(self, xs: &[f32], out: &mut [u8]) -> usize {
        use std::arch::x86_64::*;
        let whole = xs.len() / 16 * 16;
        let one = _mm512_set1_ps(1.0);
        let zero = _mm512_setzero_ps();
        let top_bit = _mm512_set1_epi32(i32::MIN);
        let base = _mm512_set1_epi32(BUCKET_BASE as i32);
        let low = _mm512_set1_epi32(LOW_MASK as i32);
        let count = _mm512_set1_epi32(0xFFFF);
        let zero_code = _mm512_set1_epi32(self.zero as i32);
        let plus_one = _mm512_set1_epi32(1);
        for at in (0..whole).step_by(16) {
            // SAFETY: `at + 16 <= xs.len()`; for x in [-1, 1] every bucket index is below BUCKETS.
            let x = _mm512_loadu_ps(xs.as_ptr().add(at));
            let x = _mm512_max_ps(_mm512_min_ps(x, one), _mm512_set1_ps(-1.0));
            let b = _mm512_castps_si512(x);
            let o = _mm512_xor_si512(b, _mm512_or_si512(_mm512_srai_epi32::<31>(b), top_bit));
            let key = _mm512_sub_epi32(_mm512_srli_epi32::<BUCKET_SHIFT>(o), base);
            let e = _mm512_i32gather_epi32::<4>(key, self.buckets.as_ptr() as *const i32);
            // Both sides are below 2^16, so the signed comparison is the unsigned one.
            let inside = _mm512_srli_epi32::<16>(e);
            let lo = _mm512_and_si512(o, low);
            let ge = _mm512_cmpge_epi32_mask(lo, inside);
            let mut c = _mm512_mask_add_epi32(_mm512_and_si512(e, count), ge, _mm512_and_si512(e, count), plus_one);
            if SIGNED {
                let pos = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, zero);
                let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, zero);
                let up = pos & _mm512_cmpgt_epi32_mask(zero_code, c);
                let down = neg & _mm512_cmpgt_epi32_mask(c, zero_code);
                c = _mm512_mask_add_epi32(c, up, c, plus_one);
                c = _mm512_mask_sub_epi32(c, down, c, plus_one);
            }
            _mm_storeu_si128(out.as_mut_ptr().add(at) as *mut __m128i, _mm512_cvtepi32_epi8(c));
        }
        whole
    }

    /// [`Coder::code`] over whole groups of eight: one gather for the bucket lookups. Returns
    /// how many elements it coded.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn codes_avx2(self, xs: &[f32], out: &mut [u8]) -> usize {
        use std::arch::x86_64::*;
        let whole = xs.len() / 8 * 8;
        let one = _mm256_set1_ps(1.0);
        let zero = _mm256_setzero_ps();
        let top_bit = _mm256_set1_epi32(i32::MIN);
        let base = _mm256_set1_epi32(BUCKET_BASE as i32);
        let low = _mm256_set1_epi32(LOW_MASK as i32);
        let count = _mm256_set1_epi32(0xFFFF);
        let zero_code = _mm256_set1_epi32(self.zero as i32);
        for at in (0..whole).step_by(8) {
            // SAFETY: `at + 8 <= xs.len()`; for x in [-1, 1] every bucket index is below BUCKETS.
            let x = _mm256_loadu_ps(xs.as_ptr().add(at));
            let x = _mm256_max_ps(_mm256_min_ps(x, one), _mm256_set1_ps(-1.0));
            let b = _mm256_castps_si256(x);
            let o = _mm256_xor_si256(b, _mm256_or_si256(_mm256_srai_epi32(b, 31), top_bit));
            let key = _mm256_sub_epi32(_mm256_srli_epi32(o, BUCKET_SHIFT as i32), base);
            let e = _mm256_i32gather_epi32::<4>(self.buckets.as_ptr() as *const i32, key);
            // Both sides are below 2^16, so the signed comparison is the unsigned one.
            let inside = _mm256_srli_epi32(e, 16);
            let lo = _mm256_and_si256(o, low);
            let ge = _mm256_xor_si256(_mm256_cmpgt_epi32(inside, lo), _mm256_set1_epi32(-1));
            // A true comparison is all ones (−1): subtracting it adds one.
            let mut c = _mm256_sub_epi32(_mm256_and_si256(e, count), ge);
            if SIGNED {
                let pos = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(x, zero));
                let neg = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(x, zero));
                let up = _mm256_and_si256(pos, _mm256_cmpgt_epi32(zero_code, c));
                let down = _mm256_and_si256(neg, _mm256_cmpgt_epi32(c, zero_code));
                c = _mm256_add_epi32(_mm256_sub_epi32(c, up), down);
            }
            let mut lanes = [0i32; 8];
            _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, c);
            for (o, &l) in out[at..at + 8].iter_mut().zip(&lanes) {
                *o = l as u8;
            }
        }
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::quant::tests::nearest;

    /// Every path this CPU has (whatever `DESCENT_NO_AVX512` says), each on its own.
    fn paths<const SIGNED: bool>(c: Coder<SIGNED>, xs: &[f32]) -> Vec<(&'static str, Vec<u8>)> {
        let mut out = Vec::new();
        let mut codes = vec![0u8; xs.len()];
        c.codes(xs, &mut codes);
        out.push(("dispatched", codes));
        #[cfg(target_arch = "x86_64")]
        {
            // Each vector path codes its whole groups; the scalar rule the rest.
            let finish = |done: usize, mut codes: Vec<u8>| {
                for (o, &x) in codes[done..].iter_mut().zip(&xs[done..]) {
                    *o = c.code(x);
                }
                codes
            };
            if is_x86_feature_detected!("avx2") {
                let mut codes = vec![0u8; xs.len()];
                // SAFETY: the CPU has AVX2.
                let done = unsafe { c.codes_avx2(xs, &mut codes) };
                out.push(("avx2", finish(done, codes)));
            }
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
            {
                let mut codes = vec![0u8; xs.len()];
                // SAFETY: the CPU has AVX-512 F, BW and VL.
                let done = unsafe { c.codes_avx512(xs, &mut codes) };
                out.push(("avx512", finish(done, codes)));
            }
        }
        out
    }

    #[test]
    fn the_vector_paths_give_the_scalar_codes() {
        let mut r = crate::rng::Rng::new(9);
        for map in [DynamicMap::signed(), DynamicMap::unsigned()] {
            let lo = if map.signed { -1.0 } else { 0.0 };
            let mut xs: Vec<f32> = map.thresholds[..255].iter().chain(&map.values).copied().collect();
            xs.extend(
                (0..4099).map(|_| lo + (1.0 - lo) * r.uniform(0.0, 1.0) as f32 * 10f32.powi(-(r.below(8) as i32))),
            );
            xs.extend([0.0, -0.0, 1.0, -1.0, 1.5, -1.5, f32::MIN_POSITIVE, -f32::MIN_POSITIVE]);
            let all =
                if map.signed { paths(Coder::<true>::new(map), &xs) } else { paths(Coder::<false>::new(map), &xs) };
            for (path, fast) in all {
                for (&x, &c) in xs.iter().zip(&fast) {
                    assert_eq!(c, map.code(x), "{path}: x = {x:e}");
                    if (lo..=1.0).contains(&x) {
                        assert_eq!(c, nearest(map, x), "{path}: x = {x:e}");
                    }
                }
            }
        }
    }
}
