//! The rayon twins of `shaders/vector.wgsl`. The norm is summed in eight lanes in a fixed
//! order on one thread, so it does not depend on the number of threads.

use rayon::prelude::*;

/// Elements per parallel task of the elementwise loops.
const TASK: usize = 1 << 15;

/// 1 / max(‖x‖₂, eps), the squares summed in f64 (eight lanes, then in order): exact enough
/// that the norm of a long vector is not the sum's rounding.
pub fn inv_norm(x: &[f32], eps: f32) -> f32 {
    1.0 / norm(x).max(eps)
}

/// ‖x‖₂, the squares summed in f64 in a fixed order (see [`inv_norm`]).
pub fn norm(x: &[f32]) -> f32 {
    let mut acc = [0f64; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += (c[k] * c[k]) as f64;
        }
    }
    for (k, &v) in rest.iter().enumerate() {
        acc[k] += (v * v) as f64;
    }
    acc.iter().sum::<f64>().sqrt() as f32
}

/// y ← y·s.
pub fn scale_by(y: &mut [f32], s: f32) {
    y.par_chunks_mut(TASK).for_each(|c| c.iter_mut().for_each(|v| *v *= s));
}

/// y ← s·x (the twin of the bench's streaming kernel).
pub fn stream_scale(x: &[f32], y: &mut [f32], s: f32) {
    y.par_chunks_mut(TASK).zip(x.par_chunks(TASK)).for_each(|(y, x)| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = s * x;
        }
    });
}

/// y ← α·x + β·y.
pub fn axpby(alpha: f32, x: &[f32], beta: f32, y: &mut [f32]) {
    y.par_chunks_mut(TASK).zip(x.par_chunks(TASK)).for_each(|(y, x)| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = alpha * x + beta * *y;
        }
    });
}

/// y ← min(max(y, lo), hi), a NaN kept (as `torch.clamp` keeps it).
pub fn clamp(y: &mut [f32], lo: f32, hi: f32) {
    y.par_chunks_mut(TASK).for_each(|c| c.iter_mut().filter(|v| !v.is_nan()).for_each(|v| *v = v.max(lo).min(hi)));
}
