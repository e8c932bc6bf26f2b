#!/usr/bin/env python3
"""PyTorch's figures for the same work as `descent bench`, to run in the same session (not in CI).

    cargo run --release -- bench optim --optimizer adam,adamw --params 1e6,1e7,1e8 --json > /tmp/optim.json
    cargo run --release -- bench matmul --json > /tmp/matmul.json
    cargo run --release -- bench epoch --optimizer adam --lr 1e-3 --json > /tmp/epoch.json
    python3 benches/torch_side_by_side.py --params 1e6,1e7,1e8 --descent /tmp/optim.json /tmp/matmul.json /tmp/epoch.json

Measures, with 2 threads (the machine's cores): torch.optim.Adam / AdamW with fused=True,
foreach=True and the for-loop, over the same 8-tensor split of the parameters that descent's
per-tensor variant uses; torch.mm at `descent bench matmul`'s default shapes; and one
Fashion-MNIST epoch of the 784-128-128-10 MLP with Adam (median of 3 after a warm-up). With
--descent it prints descent's figure beside each and the ratio (> 1: descent is faster).
"""
import argparse
import glob
import gzip
import json
import math
import os
import subprocess
import tempfile
import time

import torch

torch.set_num_threads(int(os.environ.get("THREADS", "2")))

# The device PyTorch's optimizer steps and matmuls run on: "cpu", or "cuda" with --cuda (then
# descent's side of the alternating rounds runs with --device gpu).
DEV = "cpu"


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def tensor_sizes(n, k):
    """The same split as descent::app::bench::tensor_sizes."""
    k = max(1, min(k, n))
    weights, biases = (k + 1) // 2, k // 2
    total = sum(0.5**i for i in range(weights))
    sizes, used = [], 0
    for i in range(weights):
        share = max(1, int(n * 0.5**i / total))
        bias = max(1, int(math.sqrt(share))) if i < biases else 0
        w = max(1, share - bias)
        sizes.append(w)
        used += w
        if i < biases:
            sizes.append(bias)
            used += bias
    sizes[0] += n - used
    return sizes


def tensor_shapes(n, k):
    """The same shapes as descent::app::bench::tensor_shapes (Adafactor and Muon step matrices
    as matrices): each weight a near-square [rows, cols], each bias a vector."""
    sizes = tensor_sizes(n, k)
    k = max(1, min(k, n))
    weights, out, seen, bias_next = (k + 1) // 2, [], 0, False
    for s in sizes:
        if bias_next:
            out.append([s])
            bias_next = False
            continue
        rows = max(1, int(math.sqrt(s)))
        out.append([rows, max(1, s // rows)])
        seen += 1
        bias_next = seen <= k // 2 and seen <= weights
    return out


VARIANTS = [("fused", {"fused": True}), ("foreach", {"foreach": True}), ("for-loop", {"foreach": False})]

# PyTorch's class per optimizer name; `torch.optim.X(params)` with no keywords is its default
# step (on the CPU the for-loop: only Adam, AdamW, SGD and Adagrad have fused kernels).
CLASSES = {
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "nadam": torch.optim.NAdam, "radam": torch.optim.RAdam,
    "adamax": torch.optim.Adamax, "adadelta": torch.optim.Adadelta, "adafactor": torch.optim.Adafactor,
    "rprop": torch.optim.Rprop, "asgd": torch.optim.ASGD, "muon": torch.optim.Muon,
    "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad,
}
# Settings besides lr, as descent's bench uses them (SGD with momentum 0.9).
KWARGS = {"sgd": {"momentum": 0.9}}
FUSED = {"adam", "adamw", "sgd", "adagrad"}
BY_SHAPE = {"adafactor", "muon"}


def bench_optim(names, sizes, repeats, tensors, variants=VARIANTS, shapes=None):
    """Each optimizer's step over the same tensors as descent's bench: an MLP's split of n
    parameters (matrices for Adafactor and Muon), or the one matrix of each of `shapes`."""
    rows = []
    for name in names:
        cls = CLASSES[name]
        cases = [(n, tensor_shapes(n, tensors) if name in BY_SHAPE else [[s] for s in tensor_sizes(n, tensors)]) for n in sizes]
        cases += [(math.prod(s), [s]) for s in shapes or []]
        for n, layout in cases:
            for variant, kw in (variants if name in FUSED else [("default", {})]):
                params = [torch.rand(*s, device=DEV, requires_grad=True) for s in layout]
                for p in params:
                    p.grad = torch.rand_like(p) * 1e-2
                opt = cls(params, lr=1e-3, **KWARGS.get(name, {}), **kw)
                for _ in range(2):
                    opt.step()
                sync()
                ts = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    opt.step()
                    sync()
                    ts.append(time.perf_counter() - t)
                ms = median(ts) * 1e3
                rows.append({"optimizer": name, "variant": variant, "params": n, "median_ms": ms, "gb_per_s": 28 * n / (ms * 1e-3) / 1e9, "shapes": layout})
                del opt, params
    return rows


SHAPES = [
    ("nt", 64, 784, 128), ("nt", 64, 128, 128), ("nt", 64, 128, 10), ("tn", 128, 64, 784), ("tn", 128, 64, 128),
    ("nn", 64, 128, 128), ("nt", 256, 784, 128), ("nn", 1024, 1024, 1024), ("nn", 2048, 2048, 2048),
]


def bench_mm(repeats, shapes=None):
    rows = []
    for form, m, k, n in shapes or SHAPES:
        a = torch.rand(k, m, device=DEV).t() if form == "tn" else torch.rand(m, k, device=DEV)
        b = torch.rand(n, k, device=DEV).t() if form == "nt" else torch.rand(k, n, device=DEV)
        out = torch.empty(m, n, device=DEV)
        inner = max(1, int((2e10 if DEV == "cuda" else 2e8) / (2 * m * k * n)))
        torch.mm(a, b, out=out)
        sync()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(inner):
                torch.mm(a, b, out=out)
            sync()
            ts.append((time.perf_counter() - t) / inner)
        ms = median(ts) * 1e3
        rows.append({"form": form, "m": m, "k": k, "n": n, "median_ms": ms, "gflop_per_s": 2 * m * k * n / (ms * 1e-3) / 1e9})
    return rows


def load_fashion():
    d = "/usr/share/datasets/fashion-mnist"

    def read(name, offset):
        with gzip.open(os.path.join(d, name)) as f:
            return f.read()[offset:]

    try:
        x = torch.frombuffer(bytearray(read("train-images-idx3-ubyte.gz", 16)), dtype=torch.uint8).float().div(255).view(-1, 784)
        y = torch.frombuffer(bytearray(read("train-labels-idx1-ubyte.gz", 8)), dtype=torch.uint8).long()
        return x, y, "Fashion-MNIST"
    except OSError:
        g = torch.Generator().manual_seed(0)
        return torch.rand(60000, 784, generator=g), torch.randint(0, 10, (60000,), generator=g), "random data (Fashion-MNIST not found)"


def bench_epoch(batch, epochs, fused):
    x, y, source = load_fashion()
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for e in range(epochs + 1):
        t = time.perf_counter()
        perm = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], batch):
            idx = perm[i:i + batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        if e > 0:
            times.append(time.perf_counter() - t)
    return {"median_s": median(times), "min_s": min(times), "max_s": max(times), "batch_size": batch, "source": source, "fused": fused}


def optim_rounds(binary, names, sizes, repeats, tensors, rounds, widths=(32,), shapes=(), ns_dtype="float32"):
    """Alternate `BIN bench optim --optim-bits B` (fused multi-tensor, each width in `widths`)
    and PyTorch's fp32 step (fused=True where PyTorch has it, else its default), per optimizer
    and size (or matrix shape, `shapes`), `rounds` times; report medians and the median
    per-round ratio for each width. descent's Muon runs its Newton–Schulz in `ns_dtype`
    (PyTorch's is bfloat16)."""
    print(f"\n{'optimizer':<9} {'params':>10} {'bits':>4} {'torch variant':>13} {'torch ms':>10} {'descent ms':>11} {'torch / descent':>16}   (medians of {rounds} alternating rounds)")
    cases = [(str(n), ["--params", str(n)], [n], []) for n in sizes] + [("x".join(map(str, s)), ["--shapes", "x".join(map(str, s))], [], [s]) for s in shapes]
    for name in names:
        for label, flags, ns, ss in cases:
            pairs = {b: [] for b in widths}
            variant = "fused" if name in FUSED else "default"
            for _ in range(rounds):
                theirs = bench_optim([name], ns, repeats, tensors, VARIANTS[:1], ss)[0]["median_ms"]
                for b in widths:
                    out = subprocess.run([binary, "bench", "optim", "--device", "gpu" if DEV == "cuda" else "cpu", "--optimizer", name, *flags,
                                          "--variants", "fused_multi_tensor", "--optim-bits", str(b), "--repeats", str(repeats), "--json",
                                          *(["--ns-dtype", ns_dtype] if name == "muon" else [])],
                                         check=True, capture_output=True, text=True).stdout
                    pairs[b].append((theirs, json.loads(out)["results"][0]["median_ms"]))
            for b in widths:
                ps = pairs[b]
                print(f"{name:<9} {label:>10} {b:>4} {variant:>13} {median([p[0] for p in ps]):>10.3f} {median([p[1] for p in ps]):>11.3f} "
                      f"{median([p[0] / p[1] for p in ps]):>16.2f}   rounds: " + ", ".join(f"{p[0] / p[1]:.2f}" for p in ps), flush=True)


def matmul_rounds(binary, repeats, rounds):
    """For each shape, alternate `BIN bench matmul --shapes …` and torch.mm `rounds` times, so
    both see the same moments of machine noise; report the median of the per-round ratios."""
    print(f"\n{'form':<4} {'m':>5} {'k':>5} {'n':>5} {'torch GFLOP/s':>14} {'descent GFLOP/s':>16} {'ratio':>6}   (medians of {rounds} alternating rounds)")
    for form, m, k, n in SHAPES:
        pairs = []
        for _ in range(rounds):
            out = subprocess.run([binary, "bench", "matmul", "--device", "gpu" if DEV == "cuda" else "cpu", "--shapes", f"{form}:{m}x{k}x{n}",
                                  "--repeats", str(repeats), "--json"], check=True, capture_output=True, text=True).stdout
            ours = json.loads(out)["results"][0]["gflop_per_s"]
            theirs = bench_mm(repeats, [(form, m, k, n)])[0]["gflop_per_s"]
            pairs.append((theirs, ours))
        print(f"{form:<4} {m:>5} {k:>5} {n:>5} {median([p[0] for p in pairs]):>14.1f} {median([p[1] for p in pairs]):>16.1f} "
              f"{median([p[1] / p[0] for p in pairs]):>6.2f}", flush=True)


def load_fashion_test():
    d = "/usr/share/datasets/fashion-mnist"
    with gzip.open(os.path.join(d, "t10k-images-idx3-ubyte.gz")) as f:
        x = torch.frombuffer(bytearray(f.read()[16:]), dtype=torch.uint8).float().div(255).view(-1, 784)
    with gzip.open(os.path.join(d, "t10k-labels-idx1-ubyte.gz")) as f:
        y = torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8).long()
    return x, y


def load_cached_folder(path):
    """A dataset from descent's image-folder decode cache (`DSCNTIF1`, then row length, classes,
    train rows, test rows as u64, then each split's pixel rows and labels): the CIFAR-10 JPEG
    tree exactly as descent trains on it, without decoding 60,000 JPEGs in Python."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:8] != b"DSCNTIF1":
        raise SystemExit(f"{path}: not a descent decode cache")
    row, _classes, tr, te = (int.from_bytes(b[8 + 8 * i:16 + 8 * i], "little") for i in range(4))
    at, out = 40, []
    for rows in (tr, te):
        x = torch.frombuffer(bytearray(b[at:at + rows * row]), dtype=torch.uint8).float().div(255).view(rows, row)
        at += rows * row
        y = torch.frombuffer(bytearray(b[at:at + rows]), dtype=torch.uint8).long()
        at += rows
        out += [x, y]
    return out


def batches(x, y, batch, shuffle, seed):
    """One epoch's mini-batches at a time, in one of the two orders `descent train --shuffle`
    reproduces: "randperm" (torch.randperm with a generator seeded with the seed, each epoch)
    or "dataloader" (DataLoader(shuffle=True), drawing from the global generator)."""
    if shuffle == "dataloader":
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch, shuffle=True)
        while True:
            yield iter(loader)
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(x.shape[0], generator=g)
        yield ((x[perm[i:i + batch]], y[perm[i:i + batch]]) for i in range(0, x.shape[0], batch))


def muon_with_adamw(model):
    """Muon for the hidden matrix, AdamW for the first and last layers and every bias: two
    PyTorch optimizers stepped together, as descent's `compare --case muon` runs them (Muon lr
    0.02, no decay; AdamW lr 1e-3, weight_decay 0.01). PyTorch's Newton-Schulz is bfloat16."""
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    hidden = weights[1:-1]
    rest = [p for p in model.parameters() if all(p is not h for h in hidden)]
    muon = torch.optim.Muon(hidden, lr=0.02, weight_decay=0.0)
    adamw = torch.optim.AdamW(rest, lr=1e-3, weight_decay=0.01)

    class Both:
        def zero_grad(self, set_to_none=True):
            muon.zero_grad(set_to_none=set_to_none)
            adamw.zero_grad(set_to_none=set_to_none)

        def step(self):
            muon.step()
            adamw.step()

    return Both()


# The case-study settings: (a builder of the PyTorch optimizer from the model's parameters,
# descent train flags). The lecture's four, then the newer ones at PyTorch's defaults.
CASE_OPTIMIZERS = {
    "sgd": (lambda m: torch.optim.SGD(m.parameters(), lr=0.01), ["--optimizer", "sgd", "--lr", "0.01"]),
    "adagrad": (lambda m: torch.optim.Adagrad(m.parameters(), lr=0.01), ["--optimizer", "adagrad", "--lr", "0.01"]),
    "adam": (lambda m: torch.optim.Adam(m.parameters(), lr=1e-3), ["--optimizer", "adam", "--lr", "1e-3"]),
    "adamw": (lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01), ["--optimizer", "adamw", "--lr", "1e-3", "--weight-decay", "0.01"]),
    "nadam": (lambda m: torch.optim.NAdam(m.parameters()), ["--optimizer", "nadam"]),
    "radam": (lambda m: torch.optim.RAdam(m.parameters()), ["--optimizer", "radam"]),
    "adafactor": (lambda m: torch.optim.Adafactor(m.parameters()), ["--optimizer", "adafactor"]),
    "muon": (muon_with_adamw, ["--optimizer", "muon", "--lr", "0.02", "--weight-decay", "0", "--aux-lr", "1e-3",
                               "--aux-betas", "0.9,0.999", "--aux-eps", "1e-8", "--aux-weight-decay", "0.01"]),
}


def case_accuracy(seed, data, optimizer="sgd", epochs=10, batch=64, shuffle="randperm"):
    """The lecture's run as a PyTorch user writes it: torch.manual_seed(seed), the model, then
    the batches. descent's `--seed` and `--shuffle` reproduce its initial weights and its
    batches (src/torch_rng.rs). Returns the test accuracy after each epoch."""
    x, y, tx, ty = data
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    build, _ = CASE_OPTIMIZERS[optimizer]
    opt = build(model)
    epoch_batches = batches(x, y, batch, shuffle, seed)
    accs = []
    for _ in range(epochs):
        for xb, yb in next(epoch_batches):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
        with torch.no_grad():
            accs.append((model(tx).argmax(1) == ty).float().mean().item())
    return accs


def accuracy_seeds(binary, seeds, cifar_dir=None, cifar_cache=None, threshold=82, shuffle="randperm", optimizer="sgd", ns_dtype="float32"):
    """One optimizer (the lecture's settings, batch 64, 10 epochs) per seed in PyTorch and, with a binary, in descent
    with the same seed (the same initial weights and batches): each epoch's test accuracy of
    both, the largest per-epoch gap, and the spread of final accuracies over seeds. Fashion-MNIST,
    or with `cifar_dir` the CIFAR-10 JPEG tree (PyTorch reads descent's decode cache of it).
    descent's Muon iterates in `ns_dtype` (PyTorch's in bfloat16)."""
    if cifar_dir:
        data = load_cached_folder(cifar_cache)
        extra = ["--dataset", "cifar10", "--data-dir", cifar_dir]
    else:
        x, y, _ = load_fashion()
        data = (x, y, *load_fashion_test())
        extra = []
    rows = []
    for seed in seeds:
        theirs = case_accuracy(seed, data, optimizer, shuffle=shuffle)
        ours = None
        if binary:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "metrics.json")
                flags = CASE_OPTIMIZERS[optimizer][1] + (["--ns-dtype", ns_dtype] if optimizer == "muon" else [])
                subprocess.run([binary, "train", *flags, "--epochs", "10", "--device", "cpu",
                                "--seed", str(seed), "--shuffle", shuffle, "--metrics", path, *extra], check=True, capture_output=True)
                with open(path) as f:
                    ours = [e["test_accuracy"] for e in json.load(f)["runs"][0]["epochs"]]
        rows.append((seed, theirs[-1], ours[-1] if ours else None))
        print(f"seed {seed:>3}: torch   " + " ".join(f"{a * 100:5.2f}" for a in theirs), flush=True)
        if ours:
            gap = max(abs(a - b) for a, b in zip(ours, theirs)) * 100
            print("          descent " + " ".join(f"{a * 100:5.2f}" for a in ours) + f"   largest gap {gap:.2f} points", flush=True)
    for i, who in [(1, "torch"), (2, "descent")]:
        vals = [r[i] * 100 for r in rows if r[i] is not None]
        if vals:
            print(f"{who}: final mean {sum(vals) / len(vals):.2f}%, median {median(vals):.2f}%, min {min(vals):.2f}%, max {max(vals):.2f}%, "
                  f"{sum(v < threshold for v in vals)} of {len(vals)} below {threshold}%")


def epoch_rounds(binary, batch, rounds):
    """Interleave descent's and PyTorch's epochs round by round, so machine noise hits both alike;
    report each round and the medians of the per-round ratios."""
    rows = []
    for r in range(rounds):
        out = subprocess.run([binary, "bench", "epoch", "--optimizer", "adam", "--batch-size", str(batch), "--json"],
                             check=True, capture_output=True, text=True).stdout
        ours = json.loads(out)["median_s"]
        foreach = bench_epoch(batch, 3, False)["median_s"]
        fused = bench_epoch(batch, 3, True)["median_s"]
        rows.append((ours, foreach, fused))
        print(f"round {r + 1}: descent {ours:.3f} s | torch Adam foreach {foreach:.3f} s ({foreach / ours:.2f}x), "
              f"fused=True {fused:.3f} s ({fused / ours:.2f}x)  [batch {batch}]", flush=True)
    print(f"median over {rounds} rounds, batch {batch}: descent {median([r[0] for r in rows]):.3f} s, "
          f"torch foreach {median([r[1] for r in rows]):.3f} s, fused {median([r[2] for r in rows]):.3f} s; "
          f"descent / torch: {median([r[0] / r[1] for r in rows]):.2f} (foreach), {median([r[0] / r[2] for r in rows]):.2f} (fused)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="1e6,1e7")
    ap.add_argument("--optimizers", default="adam,adamw")
    ap.add_argument("--tensors", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--skip", default="", help="comma-separated: optim,matmul,epoch")
    ap.add_argument("--descent", nargs="*", default=[], help="JSON files written by descent bench … --json")
    ap.add_argument("--descent-bin", help="run descent's `bench optim|matmul|epoch` alternately with PyTorch's, round by round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds with --descent-bin")
    ap.add_argument("--accuracy-seeds", help="e.g. 0-19: plain SGD's final Fashion-MNIST accuracy per seed (with --descent-bin, descent's too); skips the rest")
    ap.add_argument("--accuracy-optimizer", default="sgd", choices=sorted(CASE_OPTIMIZERS), help="with --accuracy-seeds: the optimizer (the lecture's settings)")
    ap.add_argument("--threshold", type=float, help="with --accuracy-seeds: count final accuracies below this percentage (default 82, or 41 with --cifar10)")
    ap.add_argument("--cifar10", metavar="DIR", help="with --accuracy-seeds: the CIFAR-10 JPEG tree instead of Fashion-MNIST (run `descent train --dataset cifar10 --data-dir DIR` once first, to write the decode cache)")
    ap.add_argument("--shuffle", default="randperm", choices=["randperm", "dataloader"], help="with --accuracy-seeds: the batch order both use (descent train --shuffle)")
    ap.add_argument("--cifar10-cache", metavar="FILE", help="descent's decode cache of that tree (default: the newest ~/.cache/descent/cifar10-*.bin)")
    ap.add_argument("--optim-bits", default="32", help="with --descent-bin: descent's state widths to time against PyTorch's fp32 fused step, e.g. 32,16,8")
    ap.add_argument("--ns-dtype", default="float32", help="descent's Muon Newton–Schulz precision in the optimizer rounds and the accuracy runs: float32 or bfloat16 (PyTorch's)")
    ap.add_argument("--shapes", default="", help="matrix shapes, each timed alone after the --params rows, e.g. 784x128,1024x1024 (Muon, Adafactor)")
    ap.add_argument("--cuda", action="store_true", help="PyTorch's optimizer steps and matmuls on the CUDA GPU (fp32, TF32 off), descent's on --device gpu; the epoch stays on the CPU")
    a = ap.parse_args()
    if a.cuda:
        global DEV
        DEV = "cuda"
        torch.backends.cuda.matmul.allow_tf32 = False
    if a.accuracy_seeds:
        lo, _, hi = a.accuracy_seeds.partition("-")
        cache = a.cifar10_cache
        if a.cifar10 and not cache:
            found = sorted(glob.glob(os.path.expanduser("~/.cache/descent/cifar10-*.bin")), key=os.path.getmtime)
            if not found:
                raise SystemExit("no decode cache found: run `descent train --dataset cifar10 --data-dir DIR --epochs 1` first, or pass --cifar10-cache")
            cache = found[-1]
        threshold = a.threshold if a.threshold is not None else 41 if a.cifar10 else 82
        accuracy_seeds(a.descent_bin, range(int(lo), int(hi or lo) + 1), a.cifar10, cache, threshold, a.shuffle, a.accuracy_optimizer, a.ns_dtype)
        return
    skip = set(a.skip.split(","))
    ours = {"optim": [], "matmul": [], "epoch": None}
    for path in a.descent:
        with open(path) as f:
            d = json.load(f)
        if "median_s" in d:
            ours["epoch"] = d
        elif d.get("results") and "optimizer" in d["results"][0]:
            ours["optim"] += d["results"]
        elif d.get("results"):
            ours["matmul"] += d["results"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if "optim" not in skip and a.descent_bin:
        widths = [int(b) for b in a.optim_bits.split(",")]
        sizes = [int(float(x)) for x in a.params.split(",") if x]
        shapes = [[int(d) for d in s.split("x")] for s in a.shapes.split(",") if s]
        optim_rounds(a.descent_bin, a.optimizers.split(","), sizes, a.repeats, a.tensors, a.rounds, widths, shapes, a.ns_dtype)
    elif "optim" not in skip:
        sizes = [int(float(s)) for s in a.params.split(",")]
        print(f"\n{'optimizer':<7} {'torch variant':<9} {'params':>10} {'torch ms':>9} {'GB/s':>6} | {'descent fused_multi_tensor ms':>30} {'ratio':>6}")
        for r in bench_optim(a.optimizers.split(","), sizes, a.repeats, a.tensors):
            mine = [o for o in ours["optim"] if o["optimizer"] == r["optimizer"] and o["params"] == r["params"] and o["variant"] == "fused_multi_tensor"]
            extra = f"{mine[0]['median_ms']:>30.3f} {r['median_ms'] / mine[0]['median_ms']:>6.2f}" if mine else ""
            print(f"{r['optimizer']:<7} {r['variant']:<9} {r['params']:>10} {r['median_ms']:>9.3f} {r['gb_per_s']:>6.1f} | {extra}")
    if "matmul" not in skip and a.descent_bin:
        matmul_rounds(a.descent_bin, a.repeats, a.rounds)
    elif "matmul" not in skip:
        print(f"\n{'form':<4} {'m':>5} {'k':>5} {'n':>5} {'torch GFLOP/s':>14} | {'descent GFLOP/s':>16} {'ratio':>6}")
        for r in bench_mm(a.repeats):
            mine = [o for o in ours["matmul"] if (o["form"], o["m"], o["k"], o["n"]) == (r["form"], r["m"], r["k"], r["n"])]
            extra = f"{mine[0]['gflop_per_s']:>16.1f} {mine[0]['gflop_per_s'] / r['gflop_per_s']:>6.2f}" if mine else ""
            print(f"{r['form']:<4} {r['m']:>5} {r['k']:>5} {r['n']:>5} {r['gflop_per_s']:>14.1f} | {extra}")
    if "epoch" not in skip and a.descent_bin:
        epoch_rounds(a.descent_bin, a.batch_size, a.rounds)
    elif "epoch" not in skip:
        for fused in (False, True):
            r = bench_epoch(a.batch_size, 3, fused)
            extra = ""
            if ours["epoch"]:
                extra = f" | descent {ours['epoch']['median_s']:.3f} s, ratio {r['median_s'] / ours['epoch']['median_s']:.2f}"
            print(f"\nepoch ({r['source']}, Adam fused={fused}, batch {r['batch_size']}): median {r['median_s']:.3f} s (min {r['min_s']:.3f}, max {r['max_s']:.3f}){extra}")


if __name__ == "__main__":
    main()
