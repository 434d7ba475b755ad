#!/usr/bin/env bash
# Issue 27's whole table in one invocation, so every ratio compares figures taken minutes apart on the same box:
#   1. fine-tuning step, MiniLM shape (minilm-l6 + a 2-class head), batch 32 x SEQ, fp32: TaskLM vs PyTorch, ROUNDS
#      alternating rounds;
#   2. the same step in bf16 (TaskLM training.precision bf16, PyTorch CPU autocast) beside fp32 at a small batch
#      (BF16_BATCH), each under a time limit (BF16_LIMIT seconds): where the CPU has no bf16 arithmetic a bf16 GEMM
#      is emulated and a step can take minutes;
#   3. serving a fine-tuned classifier MODEL at batch 1 and 32, for each length in SEQS: TaskLM's torch runtime,
#      ONNX Runtime on its fp32 export, ONNX Runtime on its int8 export, and PyTorch's no-grad encoding of the same
#      shape at batch 32, ROUNDS alternating rounds;
#   4. test macro-F1 of the three serving forms on TEST (tasklm evaluate).
# Prints a Markdown table of medians and ratios; the raw JSON lines stay in OUT.
#   bench/real-size/run.sh MODEL TEST.jsonl OUT
# Environment: TASKLM (default tasklm), PYTHON (/usr/bin/python3: Debian's python3-torch), THREADS (2), ROUNDS (3),
# STEPS (4 training, 8 serving), SEQ (128), SEQS ("128 16"), BF16_BATCH (8), BF16_LIMIT (600).
set -euo pipefail
model=$1 test=$2 out=$3
tasklm=${TASKLM:-tasklm} py=${PYTHON:-/usr/bin/python3} threads=${THREADS:-2} rounds=${ROUNDS:-3}
steps=${STEPS:-4} seq=${SEQ:-128} seqs=${SEQS:-128 16} b16=${BF16_BATCH:-8} limit=${BF16_LIMIT:-600}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
: > "$out/rows.jsonl"
load() { cut -d' ' -f1 /proc/loadavg; }
# Runs a command that prints one or more JSON lines and tags each with the row's name, round and the load before it.
row() {
  local name=$1 r=$2; shift 2
  local l; l=$(load)
  "$@" 2> "$out/last.err" | grep '^{' | sed "s/^{/{\"row\":\"$name\",\"round\":$r,\"load\":$l,/" >> "$out/rows.jsonl" \
    || echo "{\"row\":\"$name\",\"round\":$r,\"load\":$l,\"failed\":true}" >> "$out/rows.jsonl"
}
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -x 'avx2\|avx512f\|avx512_bf16\|avx512_vnni\|avx_vnni\|amx_bf16\|amx_int8' | tr '\n' ' ')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, SIMD flags: ${flags:-none of avx2/avx512/vnni/amx}" | tee "$out/machine.txt"
# Debian's python3-torch links the reference BLAS unless OpenBLAS is installed (33-79 tokens/s instead of ~1,200): say which.
echo "BLAS behind PyTorch: $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown) (apt-get install -y libopenblas0-pthread for OpenBLAS)" | tee -a "$out/machine.txt"
echo "load before: $(load)" | tee -a "$out/machine.txt"

train_flags=(--batch 32 --seq "$seq" --steps "$steps" --warmup 1 --dropout 0 --threads "$threads")
for r in $(seq 1 "$rounds"); do
  row train-tasklm "$r" $tasklm bench train --model minilm-l6 --task classification "${train_flags[@]}" --json
  row train-pytorch "$r" "$py" "$here/pytorch_bert_train.py" "${train_flags[@]}"
done

bf_flags=(--batch "$b16" --seq "$seq" --steps 2 --warmup 1 --dropout 0 --threads "$threads")
row bf16-fp32-tasklm 1 timeout "$limit" $tasklm bench train --model minilm-l6 --task classification "${bf_flags[@]}" --json
row bf16-tasklm 1 timeout "$limit" $tasklm bench train --model minilm-l6 --task classification "${bf_flags[@]}" --precision bf16 --json
row bf16-fp32-pytorch 1 timeout "$limit" "$py" "$here/pytorch_bert_train.py" "${bf_flags[@]}"
row bf16-pytorch 1 timeout "$limit" "$py" "$here/pytorch_bert_train.py" "${bf_flags[@]}" --precision bf16

$tasklm export --model "$model" --format onnx --out "$out/onnx-fp32" --json > "$out/export-fp32.json"
$tasklm export --model "$model" --format onnx --quantize int8 --out "$out/onnx-int8" --json > "$out/export-int8.json"
for s in $seqs; do
  pflags=(--seq "$s" --batch 1 32 --steps "${SERVE_STEPS:-8}" --warmup 2 --threads "$threads" --json)
  for r in $(seq 1 "$rounds"); do
    row "serve-torch-$s" "$r" $tasklm bench predict --model "$model" --runtime torch "${pflags[@]}"
    row "serve-onnx-$s" "$r" $tasklm bench predict --model "$out/onnx-fp32" --runtime onnx "${pflags[@]}"
    row "serve-int8-$s" "$r" $tasklm bench predict --model "$out/onnx-int8" --runtime onnx "${pflags[@]}"
    row "serve-pytorch-$s" "$r" "$py" "$here/pytorch_bert_train.py" --mode forward --batch 32 --seq "$s" --steps 6 --warmup 2 --threads "$threads"
  done
done
echo "load after: $(load)" | tee -a "$out/machine.txt"

for v in torch onnx-fp32 onnx-int8; do
  m=$model; [ "$v" = torch ] || m=$out/$v
  $tasklm evaluate --model "$m" "$test" --out "$out/eval-$v" --threads "$threads" --json > /dev/null || echo "evaluate $v failed"
done

python3 - "$out" "$seqs" <<'PY'
import json, os, statistics, sys
out, seqs = sys.argv[1], sys.argv[2].split()
rows = [json.loads(l) for l in open(os.path.join(out, "rows.jsonl"))]
def vals(name, key, batch=None):
    return [r[key] for r in rows if r["row"] == name and not r.get("failed") and key in r
            and (batch is None or r.get("batch") == batch)]
def med(v): return statistics.median(v) if v else float("nan")
loads = [r["load"] for r in rows]
print(f"load during the rows: {min(loads)}-{max(loads)}")
print("\n| what | TaskLM | reference | TaskLM / reference | rounds |\n|---|---|---|---|---|")
t, p = vals("train-tasklm", "tokens_per_s"), vals("train-pytorch", "tokens_per_s")
print(f"| fine-tuning step fp32, batch 32, tokens/s | {med(t):,.1f} | PyTorch {med(p):,.1f} | {med(t)/med(p):.2f}x | {t} / {p} |")
bt, bp = vals("bf16-tasklm", "tokens_per_s"), vals("bf16-pytorch", "tokens_per_s")
ft, fp = vals("bf16-fp32-tasklm", "tokens_per_s"), vals("bf16-fp32-pytorch", "tokens_per_s")
print(f"| fine-tuning step, small batch: bf16 (fp32) tokens/s | {med(bt):,.1f} ({med(ft):,.1f}) | PyTorch {med(bp):,.1f} ({med(fp):,.1f}) | bf16 {med(bt)/med(bp) if bp else float('nan'):.2f}x | bf16/fp32: TaskLM {med(bt)/med(ft) if ft else float('nan'):.2f}x, PyTorch {med(bp)/med(fp) if fp else float('nan'):.2f}x |")
for s in seqs:
    for b in (1, 32):
        tt, on, i8 = (vals(f"serve-{k}-{s}", "texts_per_s", b) for k in ("torch", "onnx", "int8"))
        print(f"| serving {s} tokens, batch {b}, texts/s: torch runtime vs ONNX Runtime fp32 | {med(tt):,.1f} | ORT {med(on):,.1f} | {med(tt)/med(on):.2f}x | {tt} / {on} |")
        print(f"| serving {s} tokens, batch {b}, texts/s: ORT int8 vs ORT fp32 | {med(i8):,.1f} | ORT fp32 {med(on):,.1f} | {med(i8)/med(on):.2f}x | {i8} |")
    pt = vals(f"serve-pytorch-{s}", "tokens_per_s")
    tt = [r["tokens_per_s"] for r in rows if r["row"] == f"serve-torch-{s}" and r.get("batch") == 32 and "tokens_per_s" in r]
    if pt: print(f"| encoding {s} tokens, batch 32, tokens/s: torch runtime vs PyTorch no-grad | {med(tt):,.1f} | PyTorch {med(pt):,.1f} | {med(tt)/med(pt):.2f}x | {pt} |")
for key in ("gemm_gflops_fp32", "gemm_gflops_bf16"):
    g = vals("train-tasklm", key) + vals("bf16-tasklm", key)
    if g: print(f"\n{key} beside TaskLM's rows: {g}")
for k in ("train-tasklm", "train-pytorch"):
    m = vals(k, "mfu")
    if m: print(f"mfu {k}: {m}")
print()
for v in ("torch", "onnx-fp32", "onnx-int8"):
    f = os.path.join(out, f"eval-{v}", "eval.json")
    if os.path.exists(f):
        e = json.load(open(f)); m = e["metrics"]
        print(f"{v}: test macro-F1 {m['macro_f1']:.4f}, accuracy {m['accuracy']:.4f} ({e['n']} rows)")
PY
