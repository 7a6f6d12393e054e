"""Opens an hftrain checkpoint with Python's torch, as an HF user would.

usage: check_checkpoint.py CHECKPOINT_DIR STEP
Exits 0 when optimizer.pt, scheduler.pt and rng_state.pth load with torch.load and have
torch's structures; prints what is wrong otherwise.
"""
import json
import random
import sys

import numpy as np
import torch

ckpt, step = sys.argv[1], int(sys.argv[2])

opt = torch.load(f"{ckpt}/optimizer.pt")
assert list(opt.keys()) == ["state", "param_groups"], opt.keys()
groups = opt["param_groups"]
assert len(groups) == 2, len(groups)
assert groups[0]["weight_decay"] > 0 and groups[1]["weight_decay"] == 0.0
for g in groups:
    for key in ("lr", "betas", "eps", "weight_decay", "amsgrad", "foreach", "maximize", "capturable", "params"):
        assert key in g, key
    assert isinstance(g["betas"], tuple) and len(g["betas"]) == 2
    assert all(isinstance(i, int) for i in g["params"])
indices = [i for g in groups for i in g["params"]]
assert indices == list(range(len(indices))), indices
assert sorted(opt["state"].keys()) == indices
for i, s in opt["state"].items():
    assert set(s.keys()) == {"step", "exp_avg", "exp_avg_sq"}, s.keys()
    assert s["step"].dtype == torch.float32 and s["step"].dim() == 0 and s["step"].item() == step
    assert s["exp_avg"].shape == s["exp_avg_sq"].shape and s["exp_avg"].dtype == torch.float32

# torch.optim.AdamW accepts it, over parameters of the same shapes, and can step.
params = [[torch.zeros_like(opt["state"][i]["exp_avg"], requires_grad=True) for i in g["params"]] for g in groups]
adamw = torch.optim.AdamW([{"params": p, "weight_decay": g["weight_decay"]} for p, g in zip(params, groups)])
adamw.load_state_dict(opt)
for p in params[0] + params[1]:
    p.grad = torch.ones_like(p)
adamw.step()
assert adamw.state[params[0][0]]["step"].item() == step + 1

sched = torch.load(f"{ckpt}/scheduler.pt")
assert list(sched.keys()) == ["base_lrs", "last_epoch", "verbose", "_step_count",
                              "_get_lr_called_within_step", "_last_lr", "lr_lambdas"], list(sched.keys())
assert sched["last_epoch"] == step and sched["_step_count"] == step + 1, sched
assert sched["lr_lambdas"] == [{}, {}]
lam = torch.optim.lr_scheduler.LambdaLR(adamw, lambda s: 1.0)
lam.load_state_dict(sched)

# HF's _load_rng_state: random.setstate, np.random.set_state, torch.set_rng_state. hftrain draws
# nothing from Python's or NumPy's generators: theirs are as HF's set_seed(seed) leaves them.
rng = torch.load(f"{ckpt}/rng_state.pth")
assert list(rng.keys()) == ["python", "numpy", "cpu"], list(rng.keys())
seed = json.load(open(f"{ckpt}/training_args.json"))["seed"]
random.setstate(rng["python"])
drawn = random.random()
random.seed(seed)
assert random.getstate() == rng["python"], "python state is not random.seed(seed)'s"
assert random.random() == drawn
np.random.set_state(rng["numpy"])
drawn = np.random.rand()
np.random.seed(seed)
expected = np.random.get_state()
np.random.set_state(rng["numpy"])
got = np.random.get_state()
assert got[0] == expected[0] and (got[1] == expected[1]).all() and got[2:] == expected[2:], "numpy state"
assert np.random.rand() == drawn
assert rng["cpu"].dtype == torch.uint8
torch.set_rng_state(rng["cpu"])

state = json.load(open(f"{ckpt}/trainer_state.json"))
assert state["global_step"] == step
print("ok")
