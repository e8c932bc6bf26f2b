#!/usr/bin/env python3
"""Two builds of descent side by side: the CPU epoch, the fused Adam step and matmul GFLOP/s,
on the CPU backend and on the GPU adapter (lavapipe here), alternating old and new each round
so that drift on a shared machine falls on both. Prints one markdown row per figure: the two
medians, new / old, and every round.

    git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release)
    python3 benches/compare_builds.py --old /tmp/old/target/release/descent \
        --new target/release/descent --rounds 5
"""
import argparse, json, os, statistics, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("--old", required=True)
ap.add_argument("--new", required=True)
ap.add_argument("--rounds", type=int, default=5)
args = ap.parse_args()
bins = {"old": args.old, "new": args.new}
FULL = "/usr/share/datasets/fashion-mnist"
SUB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "datasets", "fashion-mnist-subset")
cases = [
  ("cpu epoch (full F-MNIST, b64, sgd) median s", ["bench","epoch","--device","cpu","--data-dir",FULL,"--epochs","3","--json"], lambda j: j["median_s"]),
  ("cpu fused adam 1e7 median ms", ["bench","optim","--device","cpu","--optimizer","adam","--params","1e7","--variants","fused_multi_tensor","--json"], lambda j: j["results"][0]["median_ms"] if "results" in j else j[0]["median_ms"]),
  ("cpu matmul nt 64x784x128 GFLOP/s", ["bench","matmul","--device","cpu","--shapes","nt:64x784x128,nn:1024x1024x1024","--json"], lambda j: j["results"][0]["gflop_per_s"]),
  ("cpu matmul nn 1024^3 GFLOP/s", ["bench","matmul","--device","cpu","--shapes","nn:1024x1024x1024","--repeats","5","--json"], lambda j: j["results"][0]["gflop_per_s"]),
  ("lavapipe epoch (subset, b64, sgd) median s", ["bench","epoch","--device","gpu","--data-dir",SUB,"--epochs","3","--json"], lambda j: j["median_s"]),
  ("lavapipe fused adam 1e6 median ms", ["bench","optim","--device","gpu","--optimizer","adam","--params","1e6","--variants","fused_multi_tensor","--json"], lambda j: j["results"][0]["median_ms"] if "results" in j else j[0]["median_ms"]),
  ("lavapipe matmul nt 64x784x128 GFLOP/s", ["bench","matmul","--device","gpu","--shapes","nt:64x784x128","--repeats","5","--json"], lambda j: j["results"][0]["gflop_per_s"]),
]
rounds = args.rounds
out = {c[0]: {"old": [], "new": []} for c in cases}
for r in range(rounds):
    for name, args, get in cases:
        for which in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
            p = subprocess.run([bins[which]] + args, capture_output=True, text=True, env=dict(os.environ, MESA_SHADER_CACHE_DISABLE="true"))
            try:
                v = get(json.loads(p.stdout))
            except Exception as e:
                print(name, which, "failed", p.stdout[:300], p.stderr[-300:], file=sys.stderr); continue
            out[name][which].append(v)
    print("round", r + 1, "done", file=sys.stderr, flush=True)
for name, d in out.items():
    o, n = statistics.median(d["old"]), statistics.median(d["new"])
    print(f"| {name} | {o:.4g} | {n:.4g} | {n/o:.3f} | {', '.join(f'{x:.4g}' for x in d['old'])} / {', '.join(f'{x:.4g}' for x in d['new'])} |")
