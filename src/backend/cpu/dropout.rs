//! The rayon twin of `shaders/dropout.wgsl`: Philox4x32-10 and the dropout it draws (see
//! [`DropoutMask`]). Integer arithmetic only up to the keep decision, so the mask is the WGSL
//! kernel's bit for bit.

use crate::backend::DropoutMask;
use rayon::prelude::*;

/// Elements per parallel task (a multiple of 4: each Philox call gives four elements' words).
const TASK: usize = 1 << 14;

/// Philox4x32's round multipliers and key increments (Random123's constants).
const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds: four random words from a counter and a key.
pub fn philox4x32_10(mut c: [u32; 4], mut k: [u32; 2]) -> [u32; 4] {
    for round in 0..10 {
        if round > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        let p0 = M0 as u64 * c[0] as u64;
        let p1 = M1 as u64 * c[2] as u64;
        c = [(p1 >> 32) as u32 ^ c[1] ^ k[0], p1 as u32, (p0 >> 32) as u32 ^ c[3] ^ k[1], p0 as u32];
    }
    c
}

/// `y[i] = x[i] · (scale if element first + i is kept, else 0)`, as `x · mask` in PyTorch (a
/// NaN input stays NaN where dropped).
pub fn dropout(x: &[f32], y: &mut [f32], first: usize, m: &DropoutMask) {
    let (threshold, scale) = (m.threshold(), m.scale());
    let key = [m.seed as u32, (m.seed >> 32) as u32];
    let (off_lo, off_hi) = (m.offset as u32, (m.offset >> 32) as u32);
    y.par_chunks_mut(TASK).zip(x.par_chunks(TASK)).enumerate().for_each(|(t, (yc, xc))| {
        let base = first + t * TASK;
        let mut words = [0u32; 4];
        let mut group = usize::MAX;
        for (j, (o, &v)) in yc.iter_mut().zip(xc).enumerate() {
            let i = base + j;
            if i / 4 != group {
                group = i / 4;
                words = philox4x32_10([group as u32, 0, off_lo, off_hi], key);
            }
            let keep = (words[i % 4] >> 8) >= threshold;
            *o = v * if keep { scale } else { 0.0 };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123's known answers (`kat_vectors`, the three philox4x32 10 lines).
    #[test]
    fn philox_matches_random123() {
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
        assert_eq!(
            philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn keeps_about_one_minus_p_and_scales_them() {
        let n = 100_000;
        let x = vec![1.0f32; n];
        let mut y = vec![f32::NAN; n];
        let m = DropoutMask::new(0.3, 42, 7).unwrap();
        dropout(&x, &mut y, 0, &m);
        let kept = y.iter().filter(|&&v| v != 0.0).count();
        assert!((kept as f64 / n as f64 - 0.7).abs() < 0.01, "{kept}");
        assert!(y.iter().all(|&v| v == 0.0 || v == m.scale()));
        // A slice starting mid-tensor draws the same bits as the whole.
        let mut tail = vec![f32::NAN; n - 13];
        dropout(&x[13..], &mut tail, 13, &m);
        assert_eq!(&y[13..], &tail[..]);
        // Another offset, another mask; p = 0 keeps all, p = 1 none.
        let mut other = vec![0.0; n];
        dropout(&x, &mut other, 0, &DropoutMask::new(0.3, 42, 8).unwrap());
        assert_ne!(y, other);
        dropout(&x, &mut other, 0, &DropoutMask::new(0.0, 42, 8).unwrap());
        assert!(other.iter().all(|&v| v == 1.0));
        dropout(&x, &mut other, 0, &DropoutMask::new(1.0, 42, 8).unwrap());
        assert!(other.iter().all(|&v| v == 0.0));
    }
}
