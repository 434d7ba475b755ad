#!/usr/bin/env python3
"""Prints the transfer table (Markdown) and writes runs/transfer/table.json from the run folders bench/transfer/run.sh
made: test-split metric of the pre-trained and the random-init fine-tune, and of the classical baseline (TF-IDF +
logistic regression from `tasklm baseline`, recorded in eval.json by train; for POS the most-frequent-tag-per-word
tagger computed here from the training split)."""
import json, os, collections

ROWS = [("spam", "SpamAssassin spam vs ham", "f1_spam"), ("brown-pos", "Brown POS, 12 tags", "token_accuracy"),
        ("brown-pos-2k", "Brown POS, 12 tags, 2,000 training sentences", "token_accuracy"),
        ("brown-genre", "Brown genre, 15 classes", "macro_f1"),
        # Held-out tasks (tasklm data pretrain-corpus): recipes/text-classification.yaml with data overrides only.
        ("kjv-division", "KJV chapter passage -> division, 8 classes", "macro_f1"),
        ("wordnet-supersense", "WordNet gloss -> supersense, 25 classes", "macro_f1"),
        ("sotu-party", "SOTU passage -> party, 2 classes", "macro_f1")]
ROOT = "runs/transfer"
# Learning rates tried for a task (run folder suffix -> lr); each init gets the rate whose best validation metric is
# highest, so neither row is held to a rate chosen for the other.
GRID = {"brown-pos": {"": 1e-3, "-lr5": 5e-4, "-lr2e-3": 2e-3}, "brown-pos-2k": {"": 1e-3, "-lr2e-3": 2e-3}}


def best_validation(folder, metric):
    p = os.path.join(folder, "metrics.jsonl")
    if not os.path.exists(p):
        return None
    vals = [json.loads(l)["eval"].get(metric) for l in open(p) if l.startswith('{"eval"')]
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def pick(task, init, metric):
    """(eval.json, lr or None) of the run for task/init; over GRID's rates, the one best on validation."""
    if task not in GRID:
        return load(task, init), None
    best = None
    for suffix, lr in GRID[task].items():
        folder = os.path.join(ROOT, f"{task}{suffix}-{init}")
        v = best_validation(folder, metric)
        if v is not None and os.path.exists(os.path.join(folder, "eval.json")) and (best is None or v > best[0]):
            best = (v, json.load(open(os.path.join(folder, "eval.json"))), lr)
    return (None, None) if best is None else (best[1], best[2])


def load(task, init):
    p = os.path.join(ROOT, f"{task}-{init}", "eval.json")
    if not os.path.exists(p):
        return None
    return json.load(open(p))


def wall(task, init):
    p = os.path.join(ROOT, f"{task}-{init}", "metrics.jsonl")
    if not os.path.exists(p):
        return None
    steps = [json.loads(l) for l in open(p) if '"eval"' not in l]
    return len(steps)


def unigram_tagger(train="runs/transfer-data/pos/train.jsonl", data="runs/transfer-data/pos"):
    """Most frequent tag of each training word (lower-cased); unseen words get the most frequent tag overall."""
    counts, overall = collections.defaultdict(collections.Counter), collections.Counter()
    for l in open(train):
        r = json.loads(l)
        for w, t in zip(r["tokens"], r["tags"]):
            counts[w.lower()][t] += 1
            overall[t] += 1
    best = {w: c.most_common(1)[0][0] for w, c in counts.items()}
    top = overall.most_common(1)[0][0]
    ok = n = 0
    for l in open(os.path.join(data, "test.jsonl")):
        r = json.loads(l)
        for w, t in zip(r["tokens"], r["tags"]):
            ok += best.get(w.lower(), top) == t
            n += 1
    return ok / n


def main():
    table = []
    print("| task | metric | pre-trained encoder | random init | baseline | steps |")
    print("|---|---|---|---|---|---|")
    for task, name, metric in ROWS:
        (pre, lr_pre), (rnd, lr_rnd) = pick(task, "pretrained", metric), pick(task, "random", metric)
        get = lambda e: None if e is None else e["metrics"].get(metric)
        base, base_name = None, ""
        if task == "brown-pos":
            base, base_name = unigram_tagger(), "most-frequent tag per word"
        elif task == "brown-pos-2k":
            base, base_name = unigram_tagger("runs/transfer-data/pos-2k/train.jsonl"), "most-frequent tag per word"
        elif pre is not None and "baseline" in pre:
            base, base_name = pre["baseline"]["metrics"].get(metric), "TF-IDF + logistic regression"
        elif os.path.exists(os.path.join(ROOT, f"{task}-baseline.json")):  # `tasklm baseline --json`, written by run.sh
            base = json.load(open(os.path.join(ROOT, f"{task}-baseline.json")))["test"]["metrics"].get(metric)
            base_name = "TF-IDF + logistic regression"
        fmt = lambda v: "–" if v is None else f"{v:.4f}"
        lrs = "" if lr_pre is None else f" (lr {lr_pre:g} / {lr_rnd:g}, chosen on validation)"
        print(f"| {name} | {metric} | {fmt(get(pre))} | {fmt(get(rnd))} | {fmt(base)} ({base_name}) | {wall(task, 'pretrained')}{lrs} |")
        table.append({"task": task, "metric": metric, "pretrained": get(pre), "random": get(rnd), "baseline": base,
                      "baseline_kind": base_name, "lr_pretrained": lr_pre, "lr_random": lr_rnd})
    json.dump(table, open(os.path.join(ROOT, "table.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
