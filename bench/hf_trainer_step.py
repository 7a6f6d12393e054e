"""The real transformers 4.48.3 Trainer on the workload bench/python_loop.py times: GPT2LMHeadModel
(vocab 256, no dropout), the windows of TOKENS, AdamW (HF decay groups), clip 1.0, cosine schedule with 2 warm-up steps.

usage: HFREF_DIR=<folder with hfcompat.py> <hfref DEST>/env.sh /usr/bin/python3 bench/hf_trainer_step.py \
           TOKENS SEQ LAYERS WIDTH HEADS BATCH STEPS THREADS
TOKENS: the windows build/bench_step writes (/tmp/hftrain_bench_step_small.tokens: int64, SEQ per row);
bench_step's small case is 256 4 256 4 8. transformers cannot be installed from Debian: this is for checks
by hand, never for tests.
Prints one JSON line on stdout: {"median_seconds_per_step": after 3 warm-up steps, "peak_rss_mb": ...}.
A step is on_step_begin -> on_step_end (forward, backward, clip, optimizer and scheduler step, zero_grad);
the Trainer fetches the batch before on_step_begin. Everything else goes to stderr.
"""
import contextlib
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.environ["HFREF_DIR"])
import hfcompat  # noqa: E402,F401  (must come before transformers; note: it calls torch.set_num_threads(2))

import torch  # noqa: E402

tokens_path, seq, layers, width, heads, batch, steps, threads = sys.argv[1], *map(int, sys.argv[2:])
torch.set_num_threads(threads)  # after hfcompat, which sets 2

from torch.utils.data import Dataset  # noqa: E402
from transformers import (GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback,  # noqa: E402
                          TrainingArguments, set_seed)


class Windows(Dataset):
    def __init__(self, path):
        self.w = torch.frombuffer(bytearray(open(path, "rb").read()), dtype=torch.int64).view(-1, seq)

    def __len__(self):
        return self.w.size(0)

    def __getitem__(self, i):
        row = self.w[i]
        return {"input_ids": row, "labels": row}


class StepTimer(TrainerCallback):
    def __init__(self):
        self.t0 = None
        self.times = []

    def on_train_begin(self, args, state, control, **kw):
        if torch.get_num_threads() != threads:  # in case anything reset it during setup
            print(f"threads were {torch.get_num_threads()}, setting {threads}", file=sys.stderr)
            torch.set_num_threads(threads)

    def on_step_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self.t0)


set_seed(42)
model = GPT2LMHeadModel(GPT2Config(vocab_size=256, n_positions=seq, n_ctx=seq, n_embd=width, n_layer=layers,
                                   n_head=heads, attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0))
args = TrainingArguments(output_dir="/tmp/hftrain_hf_trainer_step", per_device_train_batch_size=batch, max_steps=steps,
                         learning_rate=1e-3, lr_scheduler_type="cosine", warmup_steps=2, weight_decay=0.01,
                         max_grad_norm=1.0, logging_steps=1000, save_strategy="no", report_to=[], seed=42,
                         dataloader_num_workers=0, use_cpu=True, disable_tqdm=True)
timer = StepTimer()
trainer = Trainer(model=model, args=args, train_dataset=Windows(tokens_path), callbacks=[timer])
with contextlib.redirect_stdout(sys.stderr):  # PrinterCallback (disable_tqdm=True) prints logs to stdout
    trainer.train()

print(f"steps timed: {len(timer.times)}, threads: {torch.get_num_threads()}, "
      f"compat: {hfcompat.APPLIED}", file=sys.stderr)
timed = sorted(timer.times[3:])
print(json.dumps({"median_seconds_per_step": timed[len(timed) // 2],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
