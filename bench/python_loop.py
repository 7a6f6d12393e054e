"""The training step bench_trainer times, in Python PyTorch: the same GPT-2 (transformers'
GPT2LMHeadModel architecture, written out here since transformers is not installed), the same
windows in the same order, AdamW with HF's decay groups, clip_grad_norm_, HF's cosine schedule.

usage: python_loop.py TOKENS SEQ LAYERS WIDTH HEADS BATCH STEPS THREADS
Prints {"median_seconds_per_step": after 3 warm-up steps, "peak_rss_mb": ...}.
"""
import json
import math
import resource
import sys
import time

import torch
from torch import nn

tokens_path, seq, layers, width, heads, batch, steps, threads = sys.argv[1], *map(int, sys.argv[2:])
torch.set_num_threads(threads)
torch.manual_seed(42)


class Conv1D(nn.Module):
    def __init__(self, nx, nf):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight).view(*x.shape[:-1], -1)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.c_attn, self.attn_proj = Conv1D(width, 3 * width), Conv1D(width, width)
        self.c_fc, self.mlp_proj = Conv1D(width, 4 * width), Conv1D(4 * width, width)

    def forward(self, x, bias):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, 2)
        q, k, v = (t.view(B, T, heads, C // heads).transpose(1, 2) for t in (q, k, v))
        w = torch.softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(C // heads)) + bias, -1)
        x = x + self.attn_proj((w @ v).transpose(1, 2).contiguous().view(B, T, C))
        h = self.c_fc(self.ln_2(x))
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))
        return x + self.mlp_proj(h)


class GPT2(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(256, width), nn.Embedding(seq, width)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)
        self.h = nn.ModuleList(Block() for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)

    def forward(self, ids, n_items):
        T = ids.size(1)
        x = self.wte(ids) + self.wpe(torch.arange(T))
        bias = torch.zeros(T, T).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), torch.finfo(torch.float32).min)
        for b in self.h:
            x = b(x, bias)
        logits = self.ln_f(x) @ self.wte.weight.t()
        loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 256), ids[:, 1:].reshape(-1), reduction="sum")
        return loss / n_items


windows = torch.frombuffer(bytearray(open(tokens_path, "rb").read()), dtype=torch.int64).view(-1, seq)
order = torch.randperm(windows.size(0), generator=torch.Generator().manual_seed(42))
model = GPT2()
model.train()
decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or ".ln_" in n or n.startswith("ln_"))]
no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or ".ln_" in n or n.startswith("ln_")]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)


def cosine(step, warmup=2, total=steps):
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
nb = (windows.size(0) + batch - 1) // batch
times = []
for s in range(steps):
    t0 = time.perf_counter()
    b = s % nb
    ids = windows[order[b * batch:(b + 1) * batch]]
    n_items = (ids[:, 1:] != -100).sum()
    model(ids, n_items).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    model.zero_grad()
    times.append(time.perf_counter() - t0)
timed = sorted(times[3:])
print(json.dumps({"median_seconds_per_step": timed[len(timed) // 2],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
