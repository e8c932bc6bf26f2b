#!/usr/bin/env python3
"""torch.mm GFLOP/s at the shapes of benches/kernels.rs, with 2 threads, for BENCHMARKS.md.

Run beside `cargo bench --bench kernels -- cpu_matmul` on a quiet machine (not in CI):
    python3 benches/torch_mm.py
"""
import time

import torch

torch.set_num_threads(2)
SHAPES = [
    ("fwd 64x784·784x128", "nt", 64, 784, 128),
    ("fwd 256x784·784x128", "nt", 256, 784, 128),
    ("fwd 64x128·128x128", "nt", 64, 128, 128),
    ("fwd 64x128·128x10", "nt", 64, 128, 10),
    ("dW 128x64·64x784", "tn", 128, 64, 784),
    ("dX 64x128·128x784", "nn", 64, 128, 784),
    ("dW 128x256·256x784", "tn", 128, 256, 784),
    ("square 1024³", "nn", 1024, 1024, 1024),
]

for label, form, m, k, n in SHAPES:
    a = torch.rand(k, m).t() if form == "tn" else torch.rand(m, k)
    b = torch.rand(n, k).t() if form == "nt" else torch.rand(k, n)
    out = torch.empty(m, n)
    reps = max(3, int(2e9 / (2 * m * k * n)))
    times = []
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        times.append((time.perf_counter() - t) / reps)
    med = sorted(times)[3]
    print(f"{label:<22} {2 * m * k * n / med / 1e9:8.1f} GFLOP/s  (median {med * 1e6:.1f} µs)")
