#!/usr/bin/env bash
# The prepared check for a machine with a real GPU: list adapters, run kernel parity on the GPU
# and the CPU, time one training epoch on each device, the optimizer and matmul benches on the
# GPU, and, where python3 has PyTorch with CUDA, PyTorch's fused Adam and torch.mm on the same
# GPU in alternating rounds. Meant to finish well within 8 minutes.
#
# Usage: bash benches/gpu-check.sh            (builds target/release/descent first)
#        DESCENT_BIN=path/to/descent bash benches/gpu-check.sh   (a binary built elsewhere)
#        bash benches/gpu-check.sh --small    (every step at small sizes, on the embedded
#                                              Fashion-MNIST subset: proves the script end to
#                                              end on lavapipe in about 3 minutes; CI runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
small=0
[ "${1:-}" = "--small" ] && small=1
if [ $small = 1 ]; then
  data=(--data-dir datasets/fashion-mnist-subset)
  params=1e4,1e5; params_state=1e4,1e5; params_chunked=4e7; params_cpu=1e5; params_all=1e4
  threads=1,2; muon_shapes=64x32,128x128,4*32x32; muon_cpu_shapes=64x32,128x128
  matmul_small=(--shapes nt:64x784x128,nn:64x128x128 --repeats 3)
  big_shapes=nn:256x256x256,nt:256x256x256,tn:256x256x256; big_repeats=3
  parity_small=(--shapes 63x65x129,64x784x128 --lengths 7,1023)
  parity_lengths=(--lengths 7,1023)
else
  data=()
  params=1e6,1e7,1e8; params_state=1e6,1e7,1e8; params_chunked=1e9; params_cpu=1e7; params_all=1e7,1e8
  threads=1,2,4,8,16; muon_shapes=784x128,1024x1024,4096x4096,12*256x256,12*1024x1024; muon_cpu_shapes=784x128,1024x1024
  matmul_small=()
  parity_small=()
  parity_lengths=()
  big_shapes=nn:1024x1024x1024,nn:2048x2048x2048,nt:2048x2048x2048,tn:2048x2048x2048,nn:4096x4096x4096; big_repeats=10
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR" 2>/dev/null || true
if [ -z "${DESCENT_BIN:-}" ]; then
  cargo build --release -q
  DESCENT_BIN=target/release/descent
fi
bin=$DESCENT_BIN
# Each section's title with the seconds since the start (the script's budget is 8 minutes).
section() { echo "== $* [${SECONDS} s]"; }
$bin info
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
section "parity (GPU and CPU against the f64 reference)"
$bin parity --device both "${parity_small[@]}" | tail -n 3
section "one Fashion-MNIST epoch per device (batch 64, Adam) at each state width"
for bits in 32 16 8; do
  for dev in gpu cpu; do
    $bin train --device "$dev" "${data[@]}" --optimizer adam --optim-bits "$bits" --epochs 1 --verbose | grep -E "^(device|model|epoch|  per)"
  done
done
section "--device auto: the trial of a few steps on each device, and the one it picks"
$bin train --device auto "${data[@]}" --no-device-cache --optimizer adam --epochs 1 | grep -E "^(--device auto|device|epoch)"
section "bench epoch (data in device memory, evaluation excluded)"
$bin bench epoch --device gpu "${data[@]}" --optimizer adam --lr 1e-3
$bin bench epoch --device cpu "${data[@]}" --optimizer adam --lr 1e-3
section "the CPU epoch on $threads threads, per op and in row slices (the host's cores)"
for path in per-op data-parallel; do
  $bin bench epoch --device cpu "${data[@]}" --optimizer adam --threads "$threads" --cpu-step "$path" | grep -E "^(threads|steps)"
done
section "optimizer steps (fused multi-tensor, per tensor, unfused), GPU timestamps"
$bin bench optim --device gpu --optimizer adam,sgd --params "$params" --repeats 20
section "Adam and AdamW with 32-, 16- and 8-bit state (fused multi-tensor)"
$bin bench optim --device gpu --optimizer adam,adamw --optim-bits 32,16,8 --params "$params_state" --repeats 20 --variants fused_multi_tensor
section "the fused step at $params_chunked parameters (split into chunks of one binding)"
$bin bench optim --device gpu --optimizer adam --optim-bits 32,8 --params "$params_chunked" --repeats 5 --variants fused_multi_tensor || true
$bin bench optim --device cpu --optimizer adam --optim-bits 32,16,8 --params "$params_cpu" --repeats 10 --variants fused_multi_tensor
section "every optimizer at every width it has (fused multi-tensor); Muon and Adafactor on matrices (N*RxC: N same-shaped ones, Muon's Newton–Schulz batched)"
$bin bench optim --device gpu --optimizer all --optim-bits 32,16,8 --params "$params_all" --repeats 10 --variants fused_multi_tensor || true
$bin bench optim --device gpu --optimizer muon,adafactor --shapes "$muon_shapes" --optim-bits 32,16 --repeats 5 || true
section "Muon on the host's CPU: Newton–Schulz in f32 and in bfloat16 (PyTorch's; vdpbf16ps where the CPU has AVX-512 BF16)"
$bin bench optim --device cpu --optimizer muon --shapes "$muon_cpu_shapes" --ns-dtype float32,bfloat16 --repeats 5
section "matmul GFLOP/s: trusted (the default: no runtime bounds checks), checked, trusted again"
$bin bench matmul --device gpu "${matmul_small[@]}"
DESCENT_GPU_SHADERS=checked $bin bench matmul --device gpu "${matmul_small[@]}"
$bin bench matmul --device gpu "${matmul_small[@]}"
section "each matmul kernel at the MLP's batch-64 products (tiled, split-k; auto is the rule's pick), twice"
for round in 1 2; do
  $bin bench matmul --device gpu --matmul-kernels tiled,split-k,auto \
    --shapes nt:64x784x128,nt:64x128x128,nt:64x128x10,tn:784x64x128,tn:128x64x128,tn:128x64x10,nn:64x10x128,nn:64x128x128
done
section "the tiled and large-tile kernels at $big_shapes, twice"
for round in 1 2; do
  $bin bench matmul --device gpu --matmul-kernels tiled,large --repeats "$big_repeats" --shapes "$big_shapes"
done
section "one epoch with every product tiled, and with the rule's choice (split-k for the first layer)"
DESCENT_GPU_MATMUL=tiled $bin bench epoch --device gpu "${data[@]}" --optimizer adam --lr 1e-3
$bin bench epoch --device gpu "${data[@]}" --optimizer adam --lr 1e-3
section "one epoch with the checked matmul (against the trusted epochs above)"
DESCENT_GPU_SHADERS=checked $bin bench epoch --device gpu "${data[@]}" --optimizer adam --lr 1e-3
DESCENT_GPU_SHADERS=checked $bin parity --device gpu --shapes 1x1x1,1x4099x1,63x65x129,64x784x128,130x7x4097,2049x33x65 "${parity_lengths[@]}" | tail -n 1
if [ $small = 0 ] && python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  section "PyTorch on the same GPU, alternating rounds with descent (--cuda)"
  python3 benches/torch_side_by_side.py --cuda --descent-bin "$bin" --optimizers adam,adamw \
    --params 1e6,1e7,1e8 --optim-bits 32,16,8 --repeats 20 --rounds 3 --skip epoch
fi
