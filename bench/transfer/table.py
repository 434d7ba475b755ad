#!/usr/bin/env python3
"""Prints the transfer table (Markdown) and writes runs/transfer/table.json from the run folders bench/transfer/run.sh
made: the test-split metric of each starting point (minilm-l6, the own bert-mini, random init of bert-mini's shape),
what the MiniLM run ships (the model, the TF-IDF baseline or their mix, chosen on validation), and the classical
baseline: TF-IDF + logistic regression with C chosen on validation (recorded in eval.json by train), or for POS the
most frequent tag of each training word, computed here."""
import collections, json, os, re

ROWS = [("spam", "SpamAssassin spam vs ham", "f1_spam", "100 steps"),
        ("brown-genre", "Brown genre, 15 classes", "macro_f1", "100 steps"),
        ("brown-pos", "Brown POS, 12 tags", "token_accuracy", "200 steps"),
        ("brown-pos-2k", "Brown POS, 12 tags, 2,000 training sentences", "token_accuracy", "200 steps"),
        ("kjv-division", "KJV chapter passage -> division, 8 classes", "macro_f1", "1 epoch"),
        ("wordnet-supersense", "WordNet gloss -> supersense, 25 classes", "macro_f1", "1 epoch"),
        ("sotu-party", "SOTU passage -> party, 2 classes", "macro_f1", "100 steps"),
        ("debian-section", "Debian package description -> section, 12 classes (new)", "macro_f1", "3 epochs"),
        ("man-section", "man-page summary -> section, 6 classes (new)", "macro_f1", "3 epochs")]
ROOT = "runs/transfer"
# Learning rates tried (run folder suffix -> lr) for an init, the one best on validation kept; none at the moment.
GRID = {}


def best_validation(folder, metric):
    p = os.path.join(folder, "metrics.jsonl")
    if not os.path.exists(p):
        return None
    vals = [json.loads(l)["eval"].get(metric) for l in open(p) if l.startswith('{"eval"')]
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def pick(task, init, metric):
    """(eval.json, folder, lr or None) of the run for task/init; over GRID's rates, the one best on validation."""
    rates = GRID.get((task, init), {"": None})
    best = None
    for suffix, lr in rates.items():
        folder = os.path.join(ROOT, f"{task}{suffix}-{init}")
        v = best_validation(folder, metric)
        if os.path.exists(os.path.join(folder, "eval.json")) and (best is None or (v or 0) > best[0]):
            best = (v or 0, json.load(open(os.path.join(folder, "eval.json"))), folder, lr)
    return (None, None, None) if best is None else best[1:]


def model_metric(e, metric):
    """The model's own test metric (eval.json's headline is what the run ships; model_metrics the model's)."""
    if e is None:
        return None
    return (e.get("model_metrics") or e["metrics"]).get(metric)


def wall(folder):
    """Wall seconds of the run, from the `wall N s` line /usr/bin/time wrote into its log."""
    try:
        m = re.findall(r"^wall ([\d.]+) s$", open(folder + ".log").read(), re.M)
        return float(m[-1]) if m else None
    except OSError:
        return None


def unigram_tagger(train):
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
    for l in open("runs/transfer-data/pos/test.jsonl"):
        r = json.loads(l)
        for w, t in zip(r["tokens"], r["tags"]):
            ok += best.get(w.lower(), top) == t
            n += 1
    return ok / n


def main():
    table = []
    fmt = lambda v: "–" if v is None else f"{v:.4f}"
    print("| task (test split) | metric | minilm-l6 | the MiniLM run ships | own bert-mini | random init | baseline | budget | MiniLM run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task, name, metric, budget in ROWS:
        mini, mini_folder, mini_lr = pick(task, "minilm", metric)
        pre, _, _ = pick(task, "pretrained", metric)
        rnd, _, _ = pick(task, "random", metric)
        if task.startswith("brown-pos"):
            train = "runs/transfer-data/pos-2k/train.jsonl" if task == "brown-pos-2k" else "runs/transfer-data/pos/train.jsonl"
            base, base_name = unigram_tagger(train), "most frequent tag per word"
        else:
            b = (mini or {}).get("baseline")
            base, base_name = (b["metrics"].get(metric) if b else None), "TF-IDF + LR"
        ships = (mini or {}).get("ships")
        shipped = None if mini is None else mini["metrics"].get(metric)
        ships_text = "–" if mini is None else (f"{fmt(shipped)} ({ships})" if ships and ships != "model" else "the model")
        secs = wall(mini_folder) if mini_folder else None
        lr = "" if mini_lr is None else f", lr {mini_lr:g} (chosen on validation)"
        print(f"| {name} | {metric} | {fmt(model_metric(mini, metric))} | {ships_text} | {fmt(model_metric(pre, metric))} | "
              f"{fmt(model_metric(rnd, metric))} | {fmt(base)} ({base_name}) | {budget} | "
              f"{'–' if secs is None else f'{secs / 60:.1f} min'}{lr} |")
        table.append({"task": task, "metric": metric, "minilm": model_metric(mini, metric), "ships": ships,
                      "shipped": shipped, "pretrained": model_metric(pre, metric), "random": model_metric(rnd, metric),
                      "baseline": base, "baseline_kind": base_name, "budget": budget, "minilm_lr": mini_lr,
                      "minilm_wall_s": secs})
    json.dump(table, open(os.path.join(ROOT, "table.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
