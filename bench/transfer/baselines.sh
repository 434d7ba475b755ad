#!/usr/bin/env bash
# The in-run baseline of the transfer table's classification rows, refitted alone by `tasklm baseline` on each task's
# train/validation/test files: the feature set (word 1-2 grams, or words + char_wb 2-5 grams) and C chosen on
# validation. One JSON file per task in runs/transfer/baselines/, then a Markdown table of test metrics.
#   bench/transfer/baselines.sh        (the data of bench/transfer/run.sh; TASKLM: the command, default tasklm)
set -euo pipefail
tasklm=${TASKLM:-tasklm}
out=runs/transfer/baselines
mkdir -p "$out"
declare -A DATA=([spam]=runs/transfer-data/spam [brown-genre]=runs/corpus/tasks/brown-genre
  [kjv-division]=runs/corpus/tasks/kjv-division [wordnet-supersense]=runs/corpus/tasks/wordnet-supersense
  [sotu-party]=runs/corpus/tasks/sotu-party [debian-section]=runs/transfer-data/debian-section
  [man-section]=runs/transfer-data/man-section)
for task in spam brown-genre kjv-division wordnet-supersense sotu-party debian-section man-section; do
  d=${DATA[$task]}
  [ -s "$out/$task.json" ] && continue
  echo "$(date -u +%H:%M:%S) $task (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  $tasklm baseline "$d/train.jsonl" --validation "$d/validation.jsonl" --test "$d/test.jsonl" --json > "$out/$task.json.tmp"
  mv "$out/$task.json.tmp" "$out/$task.json"
done
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
metric = {"spam": "f1_spam"}
print("| task | feature set chosen | C | validation macro-F1 per feature set | test metric | fit |")
print("|---|---|---|---|---|---|")
for task in ["spam", "brown-genre", "kjv-division", "wordnet-supersense", "sotu-party", "debian-section", "man-section"]:
    f = os.path.join(out, task + ".json")
    if not os.path.exists(f): continue
    o = json.load(open(f)); m = metric.get(task, "macro_f1")
    fs = o.get("feature_sets_validation_macro_f1") or {}
    print(f"| {task} | {o['feature_set']} | {o['c']:g} | {', '.join(f'{k}: {v:.4f}' for k, v in fs.items())} | "
          f"{m} {o['test']['metrics'][m]:.4f} | {o['fit_seconds']:.0f} s |")
PY
