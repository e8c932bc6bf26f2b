//! Every kernel on both backends against the f64 reference, on fresh random inputs with odd
//! sizes; outputs are poisoned with NaN first (see `descent::app::parity`).

mod common;

use descent::app::parity::{run, table, ParityConfig};
use descent::backend::Device;

fn assert_all_pass(dev: &mut Device, cfg: &ParityConfig) {
    let rows = run(dev, cfg).expect("parity run");
    assert!(rows.len() > 40, "parity covered only {} checks", rows.len());
    let failed: Vec<_> = rows.iter().filter(|r| !r.pass).cloned().collect();
    assert!(failed.is_empty(), "failed:\n{}", table(&failed));
}

#[test]
fn cpu_backend_matches_reference() {
    let cfg = ParityConfig {
        seed: 1,
        shapes: vec![(1, 1, 1), (3, 5, 7), (63, 65, 129), (65, 63, 1), (129, 784, 128)],
        lengths: vec![1, 7, 63, 65, 129, 1023, 65_537],
        optim_steps: 4,
        blockwise_lengths: descent::app::parity::BLOCKWISE_LENGTHS.to_vec(),
    };
    assert_all_pass(&mut Device::cpu(), &cfg);
}

#[test]
fn gpu_kernels_match_reference() {
    let mut dev = common::gpu();
    let cfg = ParityConfig {
        seed: 2,
        shapes: vec![(1, 1, 1), (3, 5, 7), (63, 65, 129), (65, 63, 1), (70, 784, 128)],
        lengths: vec![1, 7, 1023, 65_537],
        optim_steps: 4,
        blockwise_lengths: descent::app::parity::BLOCKWISE_LENGTHS.to_vec(),
    };
    assert_all_pass(&mut dev, &cfg);
}

#[test]
fn gpu_two_dimensional_grid_covers_every_element() {
    // 65,535 workgroups of 256 is the per-dimension limit: one more element needs a 2-D grid.
    let mut dev = common::gpu();
    let cfg = ParityConfig {
        seed: 3,
        shapes: vec![],
        lengths: vec![65_535 * 256 + 1],
        optim_steps: 2,
        blockwise_lengths: vec![],
    };
    assert_all_pass(&mut dev, &cfg);
}

/// Matmul on views inside larger buffers, at offsets that allow the vec4 loads (0, 4, 64) and
/// ones that do not (1, 3), with shapes whose rows are and are not multiples of 4: the GPU picks
/// the vec4 or the scalar kernel per call, and both must match the reference.
#[test]
fn gpu_matmul_at_aligned_and_unaligned_offsets() {
    use descent::backend::{Dims, Epilogue, Form};
    use descent::reference::{compare, matmul, matmul_abs_tol, REL_TOL};
    use descent::rng::Rng;
    let mut dev = common::gpu();
    let mut rng = Rng::new(11);
    for (m, k, n) in [(8, 16, 12), (64, 128, 36), (9, 20, 8), (7, 5, 3)] {
        for (off_a, off_b) in [(0, 0), (4, 64), (1, 0), (0, 3), (3, 1)] {
            for form in Form::ALL {
                let a = rng.uniform_vec(m * k, -1.0, 1.0);
                let b = rng.uniform_vec(k * n, -1.0, 1.0);
                let abuf = dev.alloc(off_a + m * k + 5).unwrap();
                let bbuf = dev.alloc(off_b + k * n + 5).unwrap();
                let (av, bv) = (abuf.slice(off_a, m * k), bbuf.slice(off_b, k * n));
                dev.write(av, &a).unwrap();
                dev.write(bv, &b).unwrap();
                let out = dev.alloc(m * n).unwrap();
                dev.fill(out, f32::NAN);
                dev.matmul(form, Dims { m, k, n }, av, bv, out, &Epilogue::default());
                let got = dev.read(out).unwrap();
                let (abs, rel, pass) = compare(&got, &matmul(form, m, k, n, &a, &b), matmul_abs_tol(k), REL_TOL);
                assert!(pass, "{form:?} {m}x{k}x{n} offsets ({off_a}, {off_b}): abs {abs} rel {rel}");
                for v in [abuf, bbuf, out] {
                    dev.release(v);
                }
            }
        }
    }
}

/// The non-finite search on both backends: nothing recorded for finite data; NaN, +∞ and −∞ found
/// at their index with the tag; an earlier record is never overwritten.
#[test]
fn find_nonfinite_on_both_backends() {
    use descent::rng::Rng;
    for mut dev in [Device::cpu(), common::gpu()] {
        let mut rng = Rng::new(5);
        for n in [1, 7, 1023, 65_537] {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut data = rng.uniform_vec(n, -1e30, 1e30);
                let src = dev.upload(&data).unwrap();
                let flag = dev.upload(&[-1.0, -1.0]).unwrap();
                dev.find_nonfinite(src, flag, 7.0);
                assert_eq!(dev.read(flag).unwrap(), [-1.0, -1.0], "{} n={n}: finite data flagged", dev.describe());
                let at = rng.below(n);
                data[at] = bad;
                dev.write(src, &data).unwrap();
                dev.find_nonfinite(src, flag, 8.0);
                assert_eq!(dev.read(flag).unwrap(), [8.0, at as f32], "{} n={n}: {bad} at {at}", dev.describe());
                dev.find_nonfinite(src, flag, 9.0);
                assert_eq!(dev.read(flag).unwrap()[0], 8.0, "a later step overwrote the first record");
                dev.release(src);
                dev.release(flag);
            }
        }
    }
}
