//! Criterion benches of the kernels: matmul at the MLP's shapes (forward and
//! both backward forms) and at 1024³, and optimizer steps fused over the arena, fused per tensor
//! and unfused (and Adam with 16- and 8-bit state), on the CPU and (when wgpu finds an adapter)
//! the GPU. `cargo bench`;
//! BENCHMARKS.md says how the published figures were made.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use descent::app::bench::{bench_config, tensor_sizes, Unfused};
use descent::backend::cpu::matmul::gemm_f32;
use descent::backend::{Device, Dims, Form};
use descent::optim::{OptimBits, Optimizer, Schedule};
use descent::rng::Rng;

/// (label, form, m, k, n): the 784-128-128-10 MLP at batch 64 and 256, and a square.
pub const SHAPES: [(&str, Form, usize, usize, usize); 8] = [
    ("fwd 64x784·784x128", Form::NT, 64, 784, 128),
    ("fwd 256x784·784x128", Form::NT, 256, 784, 128),
    ("fwd 64x128·128x128", Form::NT, 64, 128, 128),
    ("fwd 64x128·128x10", Form::NT, 64, 128, 10),
    ("dW 128x64·64x784", Form::TN, 128, 64, 784),
    ("dX 64x128·128x784", Form::NN, 64, 128, 784),
    ("dW 128x256·256x784", Form::TN, 128, 256, 784),
    ("square 1024³", Form::NN, 1024, 1024, 1024),
];

fn matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu_matmul");
    let mut rng = Rng::new(0);
    for (label, form, m, k, n) in SHAPES {
        let a = rng.uniform_vec(m * k, -1.0, 1.0);
        let b = rng.uniform_vec(k * n, -1.0, 1.0);
        let mut out = vec![0f32; m * n];
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_function(label, |bench| bench.iter(|| gemm_f32(form, Dims { m, k, n }, &a, &b, &mut out)));
    }
    g.finish();
}

/// One optimizer step in each of `descent bench optim`'s three variants.
fn optim_variants(c: &mut Criterion, group: &str, dev: &mut Device, n: usize) {
    let mut g = c.benchmark_group(group);
    g.sample_size(if dev.is_gpu() { 10 } else { 50 });
    let mut rng = Rng::new(1);
    let init = rng.uniform_vec(n, -1.0, 1.0);
    let p = dev.upload(&init).unwrap();
    let grads = dev.upload(&rng.uniform_vec(n, -1e-2, 1e-2)).unwrap();
    for name in ["adam", "sgd"] {
        let cfg = bench_config(name).unwrap();
        g.throughput(Throughput::Bytes((cfg.bytes_per_param() * n) as u64));
        let mut opt = Optimizer::for_len(dev, cfg.clone(), Schedule::Constant, n).unwrap();
        g.bench_function(format!("{name} fused_multi_tensor {n}"), |b| {
            b.iter(|| {
                opt.step_views(dev, p, grads).expect("a step of the right length");
                dev.sync().unwrap();
            })
        });
        let mut ranges = Vec::new();
        for len in tensor_sizes(n, 8) {
            let at = ranges.last().map_or(0, |r: &std::ops::Range<usize>| r.end);
            ranges.push(at..at + len);
        }
        g.bench_function(format!("{name} fused_per_tensor {n}"), |b| {
            b.iter(|| {
                opt.step_ranges(dev, p, grads, &ranges).unwrap();
                dev.sync().unwrap();
            })
        });
        let mut unfused = Unfused::new(dev, &cfg, &init).unwrap();
        g.bench_function(format!("{name} unfused {n}"), |b| {
            b.iter(|| {
                unfused.step(dev, grads);
                dev.sync().unwrap();
            })
        });
        unfused.release(dev);
        opt.release(dev);
    }
    // Adam with 16- and 8-bit state: the fused multi-tensor kernel.
    for bits in [OptimBits::B16, OptimBits::B8] {
        let cfg = bench_config("adam").unwrap().with_optim_bits(bits);
        g.throughput(Throughput::Bytes((cfg.bytes_per_param() * n) as u64));
        let mut opt = Optimizer::for_len(dev, cfg, Schedule::Constant, n).unwrap();
        g.bench_function(format!("adam {}-bit fused_multi_tensor {n}", bits.bits()), |b| {
            b.iter(|| {
                opt.step_views(dev, p, grads).expect("a step of the right length");
                dev.sync().unwrap();
            })
        });
        opt.release(dev);
    }
    g.finish();
}

fn optim(c: &mut Criterion) {
    optim_variants(c, "cpu_optim", &mut Device::cpu(), 1_000_000);
    // On any adapter wgpu finds; lavapipe (software) is slow, so the size is small.
    match Device::gpu() {
        Ok(mut dev) => {
            let n = if dev.describe().contains("software") { 100_000 } else { 10_000_000 };
            optim_variants(c, "gpu_optim", &mut dev, n);
        }
        Err(e) => eprintln!("gpu_optim skipped: {e:#}"),
    }
}

criterion_group!(benches, matmul, optim);
criterion_main!(benches);
