#!/usr/bin/env bash
# The web page's self-tests in a real browser: builds the wasm (web/build.sh), trains one epoch
# natively on the CPU as the reference, serves web/www on 127.0.0.1 and drives headless
# Chromium with WebGPU (web/selftest.py) through each page's self-test: parity on the
# browser's adapter, three epochs against the native ones, the playground against the lecture.
# Saves a screenshot of each page into the folder it prints (default target/web-screenshots,
# or $1). Exits non-zero on any failure.
# Needs: chromium-headless-shell (apt-get install chromium-headless-shell), or $BROWSER.
set -euo pipefail
cd "$(dirname "$0")/.."
shots="$(realpath -m "${1:-target/web-screenshots}")"
browser="${BROWSER:-$(command -v chromium-headless-shell || true)}"
if [ -z "$browser" ]; then
    echo "web/test.sh needs chromium-headless-shell (apt-get install chromium-headless-shell) or BROWSER=path" >&2
    exit 2
fi

web/build.sh

# The native CPU run the page's epoch must match: same data, seed and settings as its defaults.
native="$(mktemp -d)"
trap 'rm -rf "$native"' EXIT
cargo run --release --quiet --bin descent -- train --dataset fashion-mnist --data-dir datasets/fashion-mnist-subset \
    --optimizer adam --lr 0.001 --batch-size 64 --epochs 3 --seed 0 --device cpu --metrics "$native/metrics.json"

python3 web/selftest.py --www web/www --shots "$shots" --native "$native/metrics.json" --browser "$browser"
