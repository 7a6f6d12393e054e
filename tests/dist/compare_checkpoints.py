"""Compares two hftrain checkpoints with Python's torch, as a user checking a sharded run would.

usage: compare_checkpoints.py DIR_A DIR_B TOLERANCE
optimizer.pt must load with torch.load in both and have the same structure (groups, indices,
state keys, shapes and dtypes); its tensors and model.safetensors' tensors must agree within
TOLERANCE (absolute, or relative to values above 1). Prints the largest differences; exits 1
and says what differs otherwise.
"""
import json
import struct
import sys

import torch

a_dir, b_dir, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])


def safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        assert v["dtype"] == "F32", (name, v["dtype"])
        begin, end = v["data_offsets"]
        out[name] = torch.frombuffer(bytearray(raw[8 + n + begin:8 + n + end]), dtype=torch.float32).reshape(v["shape"])
    return out


def diff(x, y):
    return ((x - y).abs() / y.abs().clamp(min=1)).max().item() if x.numel() else 0.0


worst = {}
wa, wb = safetensors(f"{a_dir}/model.safetensors"), safetensors(f"{b_dir}/model.safetensors")
assert wa.keys() == wb.keys(), (wa.keys(), wb.keys())
worst["weights"] = max(diff(wa[k], wb[k]) for k in wa)

oa, ob = torch.load(f"{a_dir}/optimizer.pt"), torch.load(f"{b_dir}/optimizer.pt")
assert list(ob.keys()) == ["state", "param_groups"], ob.keys()
assert oa["param_groups"] == ob["param_groups"], (oa["param_groups"], ob["param_groups"])
assert list(oa["state"].keys()) == list(ob["state"].keys()), (oa["state"].keys(), ob["state"].keys())
worst["optimizer"] = 0.0
for i, sa in oa["state"].items():
    sb = ob["state"][i]
    assert list(sa.keys()) == list(sb.keys()), (i, sa.keys(), sb.keys())
    for k, va in sa.items():
        vb = sb[k]
        assert type(va) == type(vb), (i, k, type(va), type(vb))
        if isinstance(va, torch.Tensor):
            assert va.shape == vb.shape and va.dtype == vb.dtype, (i, k, va.shape, vb.shape, va.dtype, vb.dtype)
            worst["optimizer"] = max(worst["optimizer"], diff(va.double(), vb.double()))
        else:
            assert va == vb, (i, k, va, vb)
print(json.dumps(worst))
bad = [k for k, v in worst.items() if not v <= tol]
if bad:
    print(f"differ by more than {tol}: {', '.join(bad)}")
    sys.exit(1)
