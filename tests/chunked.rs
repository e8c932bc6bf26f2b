//! Work past one binding: on a GPU opened with a small forced `max_storage_buffer_binding_size`
//! (1 MiB, so a quarter-million floats), the fused optimizer step at every width, fills,
//! scales and elementwise binary ops, and the data gather split into chunks, with chunk boundaries inside tensors and
//! between 8-bit blocks, and give the CPU backend's results.

mod common;

use descent::backend::{BinaryOp, ByteBuffer, Device, Gather, UnaryOp};
use descent::optim::{Adam, OptimBits, OptimConfig, Optimizer, Rmsprop, Schedule, StoredState};
use descent::reference::{ABS_TOL, REL_TOL};
use descent::rng::Rng;

use common::{small_binding_gpu, SMALL_BINDING as LIMIT};

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() as f64 <= ABS_TOL + REL_TOL * w.abs() as f64, "{what}[{i}]: gpu {g}, cpu {w}");
    }
}

/// Three steps of `config` over tensors at `tensors` of an arena of `n`, on the CPU and on the
/// small-binding GPU from the same values.
fn same_steps(config: OptimConfig, n: usize, tensors: &[(usize, usize)]) {
    let mut rng = Rng::new(n as u64);
    let p0 = rng.uniform_vec(n, -1.0, 1.0);
    let grads: Vec<Vec<f32>> = (0..3).map(|_| rng.uniform_vec(n, -1.0, 1.0)).collect();
    let mut results = Vec::new();
    for mut dev in [Device::cpu(), small_binding_gpu()] {
        let p = dev.upload(&p0).unwrap();
        let g = dev.alloc(n).unwrap();
        let mut opt = Optimizer::for_tensors(&mut dev, config.clone(), Schedule::Constant, n, tensors).unwrap();
        for row in &grads {
            dev.write(g, row).unwrap();
            opt.step_views(&mut dev, p, g).unwrap();
        }
        dev.sync().unwrap();
        results.push((dev.read(p).unwrap(), opt.read_stored(&mut dev).unwrap(), opt.read_state(&mut dev).unwrap()));
    }
    let (cpu, gpu) = (&results[0], &results[1]);
    let label = format!("{} at {} bits", config.name(), config.optim_bits().bits());
    assert_close(&gpu.0, &cpu.0, &format!("{label} params"));
    match (&gpu.1, &cpu.1) {
        (
            StoredState::Blockwise8 { codes: gc, absmax: ga, .. },
            StoredState::Blockwise8 { codes: cc, absmax: ca, .. },
        ) => {
            for k in 0..2 {
                let differ = gc[k].iter().zip(&cc[k]).filter(|(a, b)| a != b).count();
                assert!(differ <= n / 1000, "{label}: {differ} codes differ");
                assert_close(&ga[k], &ca[k], &format!("{label} absmax"));
            }
        }
        _ => {
            for ((name, g), (_, c)) in gpu.2.iter().zip(&cpu.2) {
                assert_close(g, c, &format!("{label} {name}"));
            }
        }
    }
}

#[test]
fn optimizer_steps_split_past_one_binding() {
    // 700,001 floats: 2.8 MB, three chunks of a 1 MiB binding.
    let n = 700_001;
    same_steps(OptimConfig::Adam(Adam::default()), n, &[(0, n)]);
    let rms = OptimConfig::Rmsprop(Rmsprop { centered: true, momentum: 0.9, ..Rmsprop::default() });
    same_steps(rms.with_optim_bits(OptimBits::B16), n, &[(0, n)]);
    // 8 bits: a large tensor, a small one (f32 state) and another large one, chunks cutting
    // through both large tensors between blocks.
    let tensors = [(0, 400_000), (400_064, 1000), (401_088, 300_000)];
    let adamw = OptimConfig::Adamw(Adam::adamw()).with_optim_bits(OptimBits::B8);
    same_steps(adamw, 701_088, &tensors);
}

#[test]
fn fills_and_scales_split_past_one_binding() {
    let mut dev = small_binding_gpu();
    let n = 600_003;
    let a = dev.alloc(n + 5).unwrap();
    let b = dev.alloc(n + 5).unwrap();
    dev.fill(a, 3.0);
    dev.fill(b.slice(5, n), 1.0);
    dev.unary(UnaryOp::Scale(-0.5), a.slice(2, n), b.slice(5, n));
    let got = dev.read(b).unwrap();
    assert!(got[5..].iter().all(|&v| v == -1.5), "every element scaled");
    // Elementwise binary ops (the unfused optimizer baseline's) in chunks too.
    let c = dev.alloc(n).unwrap();
    dev.binary(BinaryOp::Sub, a.slice(3, n), b.slice(5, n), c);
    assert!(dev.read(c).unwrap().iter().all(|&v| v == 4.5), "every element subtracted");
    // A kernel that binds whole (a reduction) on a buffer past the binding: a clear error.
    let s = dev.alloc(1).unwrap();
    dev.sum(a, s, 1.0);
    let err = format!("{:#}", dev.sync().expect_err("a whole binding past the limit"));
    assert!(err.contains("over this adapter's max_storage_buffer_binding_size of 1 MiB"), "{err}");
}

/// The bench's vectorised streaming kernel in chunks of vec4s (at offsets of whole vec4s that
/// are not the alignment's), against the CPU; its neighbours untouched.
#[test]
fn the_streaming_kernel_splits_past_one_binding() {
    let n = 600_004;
    let mut rng = Rng::new(12);
    let x0 = rng.uniform_vec(n + 8, -1.0, 1.0);
    let mut outs = Vec::new();
    for mut dev in [Device::cpu(), small_binding_gpu()] {
        let x = dev.upload(&x0).unwrap();
        let y = dev.alloc(n + 12).unwrap();
        dev.fill(y, 7.0);
        dev.stream_scale(x.slice(4, n), y.slice(8, n), -1.5);
        outs.push(dev.read(y).unwrap());
    }
    assert_eq!(outs[0], outs[1], "the GPU's chunks give the CPU's values");
    let y = &outs[1];
    assert!(y[..8].iter().chain(&y[8 + n..]).all(|&v| v == 7.0), "the neighbours are untouched");
    assert!(y[8..8 + n].iter().zip(&x0[4..4 + n]).all(|(&y, &x)| y == -1.5 * x));
    // Not whole vec4s: a fault, and nothing runs.
    let mut dev = small_binding_gpu();
    let (a, b) = (dev.alloc(8).unwrap(), dev.alloc(8).unwrap());
    dev.stream_scale(a.slice(1, 4), b.slice(0, 4), 2.0);
    let err = format!("{:#}", dev.read(b).unwrap_err());
    assert!(err.contains("stream_scale") && err.contains("multiples of 4"), "{err}");
}

#[test]
fn the_gather_reads_rows_from_every_chunk() {
    // 3,000 rows of 784 bytes: 2.35 MB of images, three chunks of the 1 MiB binding.
    let (rows, row_len, count) = (3000, 784, 256);
    let mut rng = Rng::new(4);
    let images: Vec<u8> = (0..rows * row_len).map(|_| rng.below(256) as u8).collect();
    let labels: Vec<u8> = (0..rows).map(|_| rng.below(10) as u8).collect();
    let order: Vec<u32> = (0..count).map(|_| rng.below(rows) as u32).collect();
    let mut outs = Vec::new();
    for mut dev in [Device::cpu(), small_binding_gpu()] {
        let up = |dev: &mut Device, b: &[u8]| -> ByteBuffer { dev.upload_bytes(b).unwrap() };
        let (im, lb) = (up(&mut dev, &images), up(&mut dev, &labels));
        let ix = up(&mut dev, bytemuck::cast_slice(&order));
        let x = dev.alloc(count * row_len).unwrap();
        let y = dev.alloc(count).unwrap();
        dev.fill(x, f32::NAN);
        let g = Gather { images: im, labels: lb, indices: ix, start: 0, count, row_len, scale: 1.0 / 255.0, x, y };
        dev.gather(&g);
        outs.push((dev.read(x).unwrap(), dev.read(y).unwrap()));
    }
    assert!(order.iter().any(|&r| r as usize * row_len > 2 * LIMIT as usize), "some rows come from the third chunk");
    assert_eq!(outs[0], outs[1]);
}

/// Dropout past one binding: each chunk's mask continues the element index, so the chunked
/// launch equals the CPU's, bit for bit, at offsets inside the buffers.
#[test]
fn dropout_masks_continue_across_chunks() {
    let n = 700_001; // 2.8 MB: three chunks
    let x = Rng::new(4).uniform_vec(n + 100, -1.0, 1.0);
    let mask = descent::backend::DropoutMask::new(0.5, 0xfeed, 77).unwrap();
    let mut results = Vec::new();
    for mut dev in [Device::cpu(), small_binding_gpu()] {
        let xs = dev.upload(&x).unwrap();
        let y = dev.alloc(n + 200).unwrap();
        dev.fill(y, 777.0);
        dev.dropout(xs.slice(100, n), y.slice(37, n), &mask);
        results.push(dev.read(y.slice(37, n)).unwrap());
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert!(bits(&results[0]) == bits(&results[1]), "the chunked GPU dropout equals the CPU's bit for bit");
}
