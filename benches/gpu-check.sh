#!/usr/bin/env bash
# The prepared check for a machine with a real GPU: build, list adapters, run kernel parity on
# the GPU and the CPU, time one training epoch on each device, then the optimizer and matmul
# benches on the GPU. Meant to finish well within 8 minutes. Usage: bash benches/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR" 2>/dev/null || true
cargo build --release -q
bin=target/release/descent
$bin info
echo "== parity (GPU and CPU against the f64 reference)"
$bin parity --device both | tail -n 3
echo "== one Fashion-MNIST epoch per device (batch 64, Adam)"
for dev in gpu cpu; do
  $bin train --device "$dev" --optimizer adam --epochs 1 --verbose | grep -E "^(device|epoch|  per)"
done
echo "== optimizer steps (fused multi-tensor, per tensor, unfused), GPU timestamps"
$bin bench optim --device gpu --optimizer adam,sgd --params 1e6,1e7,1e8 --repeats 20
$bin bench optim --device cpu --optimizer adam --params 1e7 --repeats 10
echo "== matmul GFLOP/s"
$bin bench matmul --device gpu
