#!/usr/bin/env bash
# GPU check of `tasklm train` (GPT-2 124M shape, batch 8 x 1024, fp32) beside the PyTorch reference on the same card.
set -u
mkdir -p "$HOME/dotnet-rt" && tar -C "$HOME/dotnet-rt" -xJf .gpu/dotnet-rt.tar.xz
export DOTNET_ROOT="$HOME/dotnet-rt"
tar -C .gpu -xJf .gpu/app.tar.xz
export TASKLM_LIBTORCH=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__)+'/lib')")
D="$DOTNET_ROOT/dotnet .gpu/app/TaskLM.Cli.dll"
nvidia-smi --query-gpu=name --format=csv,noheader
W=/tmp/tw; mkdir -p $W
python3 - $W/train.jsonl <<'PY'
import json, random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    for _ in range(8 * 14):
        f.write(json.dumps({"input_ids": [random.randrange(50257) for _ in range(1024)]}) + "\n")
PY
cat > $W/r.yaml <<YAML
task: causal-lm
model: {init: gpt2, config: {vocab_size: 50304, n_positions: 1024}}
data: {train: $W/train.jsonl, max_length: 1024, shuffle: false}
training: {max_steps: 14, batch_size: 8, lr: 1.0e-4, save_every: 0, keep_last: 1, tensorboard: false, eval_every: none}
output_dir: $W/run
YAML
echo "== tasklm train, gpt2 124M (vocab 50304), batch 8x1024, fp32, cuda"
timeout 300 $D train $W/r.yaml --device cuda 2>&1 | tail -5
python3 - $W/run/metrics.jsonl <<'PY' | tee $OUT/tasklm-train.json
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
tps = [r["tokens_per_s"] for r in rows[4:]]
med = statistics.median(tps)
print(json.dumps({"impl": "tasklm train", "steps_measured": len(tps), "median_tokens_per_s": round(med), "ms_per_step": round(8192 / med * 1000, 2), "first_loss": rows[0]["loss"], "last_loss": rows[-1]["loss"]}))
PY
echo "== PyTorch reference (gpt_bench.py, plain GPT, fp32), same card"
python3 .gpu/gpt_bench.py --device cuda --dtype fp32 --steps 10 --warmup 3 | tee $OUT/pytorch-fp32.json
