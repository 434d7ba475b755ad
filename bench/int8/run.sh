#!/usr/bin/env bash
# int8 vs fp32 ONNX serving of one fine-tuned BERT-family classifier, side by side in one invocation (issue 27):
# exports the model in fp32 and as each int8 variant, then ROUNDS alternating rounds of `tasklm bench predict`
# (fp32, int8, [int8b,] fp32, int8, ...) and the test macro-F1 of each through `tasklm evaluate` (which takes an
# ONNX export of a classifier). Prints medians and int8/fp32 ratios; raw JSON lines stay in OUT.
#   bench/int8/run.sh MODEL TEST.jsonl OUT [ROUNDS=3]
# Environment: TASKLM (default: tasklm), THREADS (2), STEPS (10), SEQ (128), INT8_FLAGS (extra export flags of
# "int8"), INT8B_FLAGS (when set: a second int8 variant "int8b" with these extra flags, e.g. --int8-exclude layer.0).
set -euo pipefail
model=$1 test=$2 out=$3 rounds=${4:-3}
tasklm=${TASKLM:-tasklm} threads=${THREADS:-2} steps=${STEPS:-10} seq=${SEQ:-128}
mkdir -p "$out"
$tasklm export --model "$model" --format onnx --out "$out/fp32" --json > "$out/export-fp32.json"
# shellcheck disable=SC2086
$tasklm export --model "$model" --format onnx --quantize int8 ${INT8_FLAGS:-} --out "$out/int8" --json > "$out/export-int8.json"
variants="fp32 int8"
if [ -n "${INT8B_FLAGS:-}" ]; then
  # shellcheck disable=SC2086
  $tasklm export --model "$model" --format onnx --quantize int8 $INT8B_FLAGS --out "$out/int8b" --json > "$out/export-int8b.json"
  variants="$variants int8b"
fi
for v in $variants; do ls -l "$out/$v/model.onnx"; done | tee "$out/sizes.txt"
: > "$out/predict.jsonl"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load before: $(cut -d' ' -f1 /proc/loadavg)" | tee "$out/load.txt"
for r in $(seq 1 "$rounds"); do
  for v in $variants; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    $tasklm bench predict --model "$out/$v" --runtime onnx --seq "$seq" --batch 1 32 --steps "$steps" --warmup 2 --threads "$threads" --json \
      | sed "s/^{/{\"round\":$r,\"variant\":\"$v\",\"load\":$load,/" >> "$out/predict.jsonl"
  done
done
echo "load after: $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out/load.txt"
for v in $variants; do
  $tasklm evaluate --model "$out/$v" "$test" --out "$out/eval-$v" --threads "$threads" --json > /dev/null
done
python3 - "$out" $variants <<'PY'
import json, statistics, sys, os
out, variants = sys.argv[1], sys.argv[2:]
rows = [json.loads(l) for l in open(os.path.join(out, "predict.jsonl"))]
for b in sorted({r["batch"] for r in rows}):
    f = [r["texts_per_s"] for r in rows if r["batch"] == b and r["variant"] == "fp32"]
    print(f"batch {b}: fp32 texts/s median {statistics.median(f)} (rounds {f})")
    for v in variants[1:]:
        q = [r["texts_per_s"] for r in rows if r["batch"] == b and r["variant"] == v]
        pairs = [round(y / x, 2) for x, y in zip(f, q)]
        print(f"batch {b}: {v} texts/s median {statistics.median(q)} (rounds {q}); median {v}/fp32 "
              f"{statistics.median(q) / statistics.median(f):.2f}x, round by round {pairs}")
print("loads:", [r["load"] for r in rows if r["batch"] == 1])
for v in variants:
    e = json.load(open(os.path.join(out, f"eval-{v}", "eval.json")))
    m = e["metrics"]
    print(f"{v}: test accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} ({e['n']} rows)")
PY
