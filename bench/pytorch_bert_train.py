# Plain PyTorch reference for `tasklm bench train`: a BERT encoder + classifier of a given shape, one JSON line per run.
"""A BERT sequence classifier written with torch.nn only (no transformers), trained on random ids with the step
`tasklm bench train --task classification` times: forward, cross-entropy, backward, gradient clipping at 1.0 and
AdamW (weight decay on every weight but biases and LayerNorm, HF's grouping), constant learning rate. Prints the
median step time, tokens/s, the model FLOPs per token (6 x non-embedding parameters + 12 x layers x hidden x seq,
as TaskLM counts them), the fp32 and bf16 GEMM rates measured in the same process, and the model-FLOPs utilisation.

Debian: apt-get install -y python3-torch libopenblas0-pthread (the reference BLAS makes PyTorch ~30x slower).

    python3 bench/pytorch_bert_train.py --layers 6 --hidden 384 --heads 12 --intermediate 1536 \
        --batch 32 --seq 128 --steps 10 --warmup 2 --threads 2 --dropout 0 [--precision bf16] [--mode forward]
"""
import argparse
import json
import math
import os
import platform
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads, dropout):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, bias):
        b, t, c = x.shape
        def split(y):  # (B, T, C) -> (B, nh, T, hs)
            return y.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias   # (B, nh, T, T)
        ctx = self.drop(scores.softmax(-1)) @ v                             # (B, nh, T, hs)
        ctx = ctx.transpose(1, 2).reshape(b, t, c)
        return self.norm(x + self.drop(self.dense(ctx)))


class Layer(nn.Module):
    def __init__(self, hidden, heads, intermediate, dropout):
        super().__init__()
        self.attention = SelfAttention(hidden, heads, dropout)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, bias):
        x = self.attention(x, bias)
        return self.norm(x + self.drop(self.output(F.gelu(self.intermediate(x)))))


class BertClassifier(nn.Module):
    def __init__(self, vocab, positions, hidden, heads, intermediate, layers, labels, dropout):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden, padding_idx=0)
        self.position = nn.Embedding(positions, hidden)
        self.token_type = nn.Embedding(2, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(Layer(hidden, heads, intermediate, dropout) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, labels)

    def forward(self, ids, mask):
        t = ids.shape[1]
        pos = torch.arange(t, device=ids.device)
        x = self.drop(self.norm(self.word(ids) + self.position(pos) + self.token_type(torch.zeros_like(ids))))
        bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min   # (B, 1, 1, T)
        for layer in self.layers:
            x = layer(x, bias)
        return self.classifier(self.drop(torch.tanh(self.pooler(x[:, 0]))))


def gemm_gflops(n, dtype):
    """Square GEMM rate (median of 3) and the side measured: n, or less where one product would take over a second
    (bf16 without CPU support runs 10-100x below fp32). The same rule as `tasklm bench train`."""
    def rate(side, repeats):
        a, b = torch.randn(side, side).to(dtype), torch.randn(side, side).to(dtype)
        a @ b
        times = []
        for _ in range(repeats):
            s = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - s)
        return 2.0 * side ** 3 / statistics.median(times) / 1e9
    side = min(256, n)
    r = rate(side, 1)
    while side < n and 2.0 * min(n, side * 2) ** 3 / (r * 1e9) < 1.0:
        side = min(n, side * 2)
        r = rate(side, 1)
    return rate(side, 3), side


def blas_libraries():
    """The BLAS libraries this process has mapped (Debian's python3-torch takes whichever libblas.so.3 is selected)."""
    try:
        with open("/proc/self/maps") as f:
            return sorted({os.path.basename(l.split()[-1]) for l in f if "blas" in l.lower() and "/" in l})
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--intermediate", type=int, default=1536)
    ap.add_argument("--vocab", type=int, default=30522)
    ap.add_argument("--positions", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = PyTorch's default)")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: CPU autocast, fp32 weights")
    ap.add_argument("--mode", choices=["train", "forward"], default="train", help="forward: no_grad encoding only")
    ap.add_argument("--gemm-size", type=int, default=2048)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = BertClassifier(a.vocab, a.positions, a.hidden, a.heads, a.intermediate, a.layers, 2, a.dropout)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "norm" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
    g = torch.Generator().manual_seed(0)
    total = a.warmup + a.steps
    ids = torch.randint(min(1000, a.vocab // 2), a.vocab, (total, a.batch, a.seq), generator=g)
    labels = torch.randint(0, 2, (total, a.batch), generator=g)
    mask = torch.ones(a.batch, a.seq, dtype=torch.long)
    times, loss = [], float("nan")
    for i in range(total):
        s = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            if a.mode == "forward":
                model.eval()
                with torch.no_grad():
                    model(ids[i], mask)
            else:
                model.train()
                out = model(ids[i], mask)
                l = F.cross_entropy(out.float(), labels[i])
        if a.mode == "train":
            l.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss = l.item()
        times.append(time.perf_counter() - s)
    sec = statistics.median(times[a.warmup:])
    nparams = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for m in (model.word, model.position, model.token_type) for p in m.parameters())
    per_token = (6.0 if a.mode == "train" else 2.0) * (nparams - embedding) + (12.0 if a.mode == "train" else 4.0) * a.layers * a.hidden * a.seq
    tokens = a.batch * a.seq
    (g32, side32), (g16, side16) = gemm_gflops(a.gemm_size, torch.float32), gemm_gflops(a.gemm_size, torch.bfloat16)
    rate = g16 if a.precision == "bf16" else g32
    load = open("/proc/loadavg").read().strip() if os.path.exists("/proc/loadavg") else None
    print(json.dumps({
        "bench": "train" if a.mode == "train" else "forward", "impl": "pytorch", "torch": torch.__version__,
        "n_layer": a.layers, "n_head": a.heads, "n_embd": a.hidden, "intermediate": a.intermediate, "vocab_size": a.vocab,
        "batch": a.batch, "seq": a.seq, "threads": torch.get_num_threads(), "precision": a.precision, "dropout": a.dropout,
        "params": nparams, "non_embedding_params": nparams - embedding, "steps": a.steps,
        "ms_per_step": round(sec * 1000, 2), "tokens_per_s": round(tokens / sec, 1),
        "ms_per_step_all": [round(x * 1000, 1) for x in times[a.warmup:]],
        "mflop_per_token": round(per_token / 1e6, 2), "tflops": round(per_token * tokens / sec / 1e12, 4),
        "gemm_size_fp32": side32, "gemm_size_bf16": side16, "gemm_gflops_fp32": round(g32, 1), "gemm_gflops_bf16": round(g16, 1),
        "mfu": round(per_token * tokens / sec / 1e9 / rate, 3), "final_loss": round(loss, 4) if a.mode == "train" else None,
        "machine": {"cpu": platform.processor() or platform.machine(), "logical_cores": os.cpu_count(), "loadavg": load,
                    "blas": blas_libraries()},
    }))


if __name__ == "__main__":
    main()
