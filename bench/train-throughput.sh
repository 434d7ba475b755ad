#!/usr/bin/env bash
# Training throughput of `tasklm train` (tokens/s per optimizer step, from metrics.jsonl) for GPT-2 presets on this machine.
# Usage: bench/train-throughput.sh [preset ...]   (default: gpt2-mini gpt2; needs a built CLI: dotnet build TaskLM.slnx)
# Random token ids, batch 4 × 128 tokens, 6 AdamW steps; the first step (warm-up, allocation) is left out of the mean.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cli="$root/src/TaskLM.Cli/bin/Debug/net10.0/TaskLM.Cli.dll"
[ -f "$cli" ] || { echo "build first: dotnet build TaskLM.slnx" >&2; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
python3 - "$work/train.jsonl" <<'PY'
import json, random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    for _ in range(64):
        f.write(json.dumps({"input_ids": [random.randrange(50257) for _ in range(128)]}) + "\n")
PY
presets=("$@"); [ ${#presets[@]} -gt 0 ] || presets=(gpt2-mini gpt2)
printf "%-12s %12s %14s %12s\n" preset params tokens/s s/step
for p in "${presets[@]}"; do
  cat > "$work/r.yaml" <<YAML
task: causal-lm
model: {init: $p}
data: {train: $work/train.jsonl, max_length: 128, shuffle: false}
training: {max_steps: 6, batch_size: 4, lr: 1.0e-4, save_every: 0, keep_last: 1, tensorboard: false, eval_every: none}
output_dir: $work/run-$p
YAML
  out=$(dotnet "$cli" train "$work/r.yaml" 2>/dev/null)
  params=$(echo "$out" | sed -n 's/.*all params: \([0-9,]*\).*/\1/p')
  python3 - "$work/run-$p/metrics.jsonl" "$p" "$params" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][1:]
tps = sum(r["tokens_per_s"] for r in rows) / len(rows)
print(f"{sys.argv[2]:<12} {sys.argv[3]:>12} {tps:>14.0f} {512 / tps:>12.2f}")
PY
done
