"""The training step bench_models --real times, in Python PyTorch: transformers' LlamaForCausalLM /
Qwen2ForCausalLM architecture (eager attention, as transformers runs it on torch 1.13) written out
here since transformers is not installed, built from a config.json's keys with random weights;
AdamW with HF's decay groups, clip_grad_norm_ at 1.0, optionally gradient checkpointing as
transformers' gradient_checkpointing_enable() sets it up (torch.utils.checkpoint per decoder layer,
use_reentrant=True).

usage: python_llama.py CONFIG_JSON SEQ BATCH STEPS THREADS CHECKPOINTING
THREADS 0 leaves torch's default (as users run it). Prints one JSON line:
{"ms": median milliseconds per optimizer step after 1 warm-up step, "params": N}.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

config_path, seq, batch, steps, threads, checkpointing = sys.argv[1], *map(int, sys.argv[2:])
cfg = json.load(open(config_path))
if threads > 0:
    torch.set_num_threads(threads)
torch.manual_seed(42)

hidden = cfg["hidden_size"]
heads = cfg["num_attention_heads"]
kv_heads = cfg.get("num_key_value_heads", heads)
head_dim = cfg.get("head_dim") or hidden // heads
qkv_bias = cfg.get("model_type") == "qwen2" or cfg.get("attention_bias", False)
eps = cfg.get("rms_norm_eps", 1e-6)
vocab = cfg["vocab_size"]


class RMSNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + eps))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)
        inter = cfg["intermediate_size"]
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(), RMSNorm()

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, heads, head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, T, kv_heads, head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, T, kv_heads, head_dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
        w = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(head_dim) + mask, dim=-1, dtype=torch.float32)
        x = x + self.o_proj((w @ v).transpose(1, 2).reshape(B, T, heads * head_dim))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class CausalLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(Layer() for _ in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm()
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=cfg.get("initializer_range", 0.02))
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        if cfg.get("tie_word_embeddings", False):
            self.lm_head.weight = self.embed_tokens.weight
        theta = cfg.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))

    def forward(self, ids):
        T = ids.size(1)
        freqs = torch.arange(T, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1)[None, None]
        x = self.embed_tokens(ids)
        for layer in self.layers:
            if checkpointing:
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, mask, use_reentrant=True)
            else:
                x = layer(x, cos, sin, mask)
        logits = self.lm_head(self.norm(x)).float()
        # transformers' ForCausalLMLoss: shift, then mean over the label tokens.
        return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))


model = CausalLM().train()
params = sum(p.numel() for p in model.parameters())
# HF's decay groups: everything but biases and the norms' weights.
decay = [p for n, p in model.named_parameters() if not ("bias" in n or "layernorm" in n or n == "norm.weight")]
no_decay = [p for n, p in model.named_parameters() if "bias" in n or "layernorm" in n or n == "norm.weight"]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
ids = torch.randint(0, vocab, (batch, seq))
times = []
for s in range(steps + 1):
    t0 = time.perf_counter()
    model(ids).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if s > 0:
        times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps({"ms": times[len(times) // 2] * 1e3, "params": params}))
