#!/usr/bin/env bash
# The README's transfer table: each task fine-tuned from TaskLM's pre-trained encoder (models/tasklm-bert-mini) and
# from random weights of the same shape, with the same recipe and budget, beside a classical baseline.
# Usage (from the repo root, after `dotnet build -c Release`):
#   bench/transfer/run.sh [THREADS]
# Needs: runs/corpus (tasklm data pretrain-corpus --out runs/corpus) and runs/transfer-data/{spam,pos}:
#   tasklm data import data/spam-assassin/spam-assassin.jsonl.gz --email-field raw --out runs/transfer-data/spam-text.jsonl
#   tasklm data split runs/transfer-data/spam-text.jsonl --out runs/transfer-data/spam --ratios 0.8,0.1,0.1 --stratify label
#   tasklm data brown-pos --out runs/transfer-data/pos
# Writes runs/transfer/<task>-<init>/ run folders and prints the table (bench/transfer/table.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
T=${TASKLM:-src/TaskLM.Cli/bin/Release/net10.0/tasklm}
threads=${1:-2}
for task in ${TASKS:-spam brown-pos brown-genre}; do
  for init in ${INITS:-pretrained random}; do
    out=runs/transfer/$task-$init
    [ -f "$out/eval.json" ] && continue
    model=models/tasklm-bert-mini; [ "$init" = random ] && model=bert-mini
    echo "== $task, $init"
    rm -rf "$out"; mkdir -p runs/transfer
    "$T" train "bench/transfer/$task.yaml" model.init=$model output_dir=$out --threads "$threads" > "runs/transfer/$task-$init.log" 2>&1
    tail -3 "runs/transfer/$task-$init.log"
  done
done
python3 bench/transfer/table.py
