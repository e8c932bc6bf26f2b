//! Criterion benches of the CPU backend's kernels: matmul at the MLP's shapes (forward and
//! both backward forms) and at 1024³, and the fused Adam step. `cargo bench`; BENCHMARKS.md
//! says how the published figures were made.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use descent::backend::cpu::gemm_f32;
use descent::backend::{Device, Dims, Form};
use descent::optim::{OptimConfig, Optimizer, Schedule};
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

fn adam(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu_adam_fused");
    let n = 1_000_000;
    let mut dev = Device::cpu();
    let mut rng = Rng::new(1);
    let p = dev.upload(&rng.uniform_vec(n, -1.0, 1.0)).unwrap();
    let grads = dev.upload(&rng.uniform_vec(n, -1.0, 1.0)).unwrap();
    let cfg = OptimConfig::defaults("adam").unwrap();
    g.throughput(Throughput::Bytes((cfg.bytes_per_param() * n) as u64));
    let mut opt = Optimizer::new(&mut dev, cfg, Schedule::Constant, n).unwrap();
    g.bench_function("1e6 params", |bench| bench.iter(|| opt.step(&mut dev, p, grads)));
    g.finish();
}

criterion_group!(benches, matmul, adam);
criterion_main!(benches);
