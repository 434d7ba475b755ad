#!/usr/bin/env bash
# The README's transfer table: each task fine-tuned from TaskLM's pre-trained encoder (models/tasklm-bert-mini) and
# from random weights of the same shape, with the same recipe and budget, beside a classical baseline.
# Usage (from the repo root, after `dotnet build -c Release`):
#   bench/transfer/run.sh [THREADS]
# Needs: runs/corpus (tasklm data pretrain-corpus --out runs/corpus) and runs/transfer-data/{spam,pos}:
#   tasklm data import data/spam-assassin/spam-assassin.jsonl.gz --email-field raw --out runs/transfer-data/spam-text.jsonl
#   tasklm data split runs/transfer-data/spam-text.jsonl --out runs/transfer-data/spam --ratios 0.8,0.1,0.1 --stratify label
#   tasklm data brown-pos --out runs/transfer-data/pos
#   tasklm data split runs/transfer-data/pos/train.jsonl --out runs/transfer-data/pos-2k --counts 2000,49949 --names train,rest --stratify none
# Writes runs/transfer/<task>-<init>/ run folders and prints the table (bench/transfer/table.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
T=${TASKLM:-src/TaskLM.Cli/bin/Release/net10.0/tasklm}
threads=${1:-2}
for task in ${TASKS:-spam brown-pos brown-pos-2k brown-genre}; do
  # POS: three learning rates per init (two with 2k sentences; table.py keeps, per init, the one best on validation);
  # the others: the yaml's.
  rates=("-"); [ "$task" = brown-pos ] && rates=("-" "lr5:5.0e-4" "lr2e-3:2.0e-3"); [ "$task" = brown-pos-2k ] && rates=("-" "lr2e-3:2.0e-3")
  for init in ${INITS:-pretrained random}; do
   for rate in "${rates[@]}"; do
    suffix=""; lr=(); [ "$rate" != "-" ] && { suffix="-${rate%%:*}"; lr=("training.lr=${rate#*:}"); }
    out=runs/transfer/$task$suffix-$init
    [ -f "$out/eval.json" ] && continue
    model=models/tasklm-bert-mini; [ "$init" = random ] && model=bert-mini
    echo "== $task$suffix, $init"
    rm -rf "$out"; mkdir -p runs/transfer
    "$T" train "bench/transfer/$task.yaml" model.init=$model "${lr[@]}" output_dir=$out --threads "$threads" > "runs/transfer/$task$suffix-$init.log" 2>&1 \
      || echo "   failed (see runs/transfer/$task$suffix-$init.log)"
    tail -3 "runs/transfer/$task$suffix-$init.log"
   done
  done
  # The classical baseline on the same splits (train's eval.json carries it too when the recipe asks for it).
  if [ "${task#brown-pos}" = "$task" ] && [ ! -f "runs/transfer/$task-baseline.json" ]; then
    d=$(sed -n 's/^  train: \(.*\)\/train.jsonl$/\1/p' "bench/transfer/$task.yaml")
    "$T" baseline "$d/train.jsonl" --validation "$d/validation.jsonl" --test "$d/test.jsonl" --json > "runs/transfer/$task-baseline.json"
  fi
done
# The held-out tasks (made by `tasklm data pretrain-corpus`; their test documents were never pre-trained on) run through
# the generic recipes/text-classification.yaml with only data overrides, as a user's CSV would.
shape='{hidden_size: 128, num_hidden_layers: 4, num_attention_heads: 2, intermediate_size: 512, vocab_size: 8192, max_position_embeddings: 128}'
for task in ${HELDOUT:-kjv-division wordnet-supersense sotu-party}; do
  for init in ${INITS:-pretrained random}; do
    out=runs/transfer/$task-$init
    [ -f "$out/eval.json" ] && continue
    extra=(); [ "$init" = random ] && extra=(model.init=bert-mini "model.config=$shape" tokenizer=models/tasklm-bert-mini)
    echo "== $task, $init"
    rm -rf "$out"; mkdir -p runs/transfer
    d=runs/corpus/tasks/$task
    "$T" train recipes/text-classification.yaml data.train=$d/train.jsonl data.validation=$d/validation.jsonl data.test=$d/test.jsonl \
      "${extra[@]}" output_dir=$out --threads "$threads" > "runs/transfer/$task-$init.log" 2>&1 || echo "   failed (see runs/transfer/$task-$init.log)"
    tail -3 "runs/transfer/$task-$init.log"
  done
done
python3 bench/transfer/table.py
