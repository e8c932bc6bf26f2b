#!/usr/bin/env python3
"""PyTorch reads descent's checkpoints and exports (run by hand; needs torch and safetensors).

    descent train --epochs 1 --checkpoint /tmp/c.safetensors
    descent export --checkpoint /tmp/c.safetensors --out /tmp/model.safetensors
    python3 tests/python/check_safetensors.py /tmp/model.safetensors /tmp/c.safetensors

Loads the export into the lecture's nn.Sequential with strict=True, and the full checkpoint's
model tensors (filtering out `optimizer.*`), then checks both give the same weights.
"""
import sys

import torch
from safetensors.torch import load_file

model_path, checkpoint_path = sys.argv[1], sys.argv[2]
weights = load_file(model_path)
sizes = [weights["0.weight"].shape[1]] + [weights[f"{i}.weight"].shape[0] for i in range(0, 2 * (len(weights) // 2), 2)]
layers = []
for i in range(len(sizes) - 1):
    layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
    if i < len(sizes) - 2:
        layers.append(torch.nn.ReLU())
model = torch.nn.Sequential(*layers)
model.load_state_dict(weights, strict=True)
full = load_file(checkpoint_path)
state = {k: v for k, v in full.items() if not k.startswith("optimizer.")}
model2 = torch.nn.Sequential(*[type(l)(l.in_features, l.out_features) if isinstance(l, torch.nn.Linear) else l for l in layers])
model2.load_state_dict(state, strict=True)
for (k, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
    assert torch.equal(a, b), k
print(f"ok: {'-'.join(map(str, sizes))} MLP loaded with strict=True; optimizer tensors: {sorted({k.split('.')[1] for k in full if k.startswith('optimizer.')})}")
