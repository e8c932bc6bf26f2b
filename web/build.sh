#!/usr/bin/env bash
# Build the web page into web/www: the library compiled to wasm32 (release) with its
# JavaScript glue in web/www/pkg, and the embedded Fashion-MNIST subset in web/www/data.
# Installs what it needs the first time: the wasm32 target (rustup) and wasm-bindgen-cli at the
# version web/Cargo.lock pins (cargo install; about 4 minutes once).
# Then serve it:  python3 -m http.server -d web/www -b 127.0.0.1 8000  and open
# http://127.0.0.1:8000/ (WebGPU needs a secure context: 127.0.0.1 or https, not file://).
set -euo pipefail
cd "$(dirname "$0")"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi
want="$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p}' Cargo.lock)"
have="$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2 || true)"
if [ "$have" != "$want" ]; then
    echo "installing wasm-bindgen-cli $want (the glue must match the wasm-bindgen crate)" >&2
    cargo install --quiet wasm-bindgen-cli --version "=$want"
fi

cargo build --release --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir www/pkg target/wasm32-unknown-unknown/release/descent_web.wasm
mkdir -p www/data
cp ../datasets/fashion-mnist-subset/*.gz www/data/
echo "built $(pwd)/www ($(du -sh www/pkg | cut -f1) of wasm and glue)"
