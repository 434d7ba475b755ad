#!/usr/bin/env python3
"""Builds the transfer table's two held-out tasks from text every Debian 12 machine carries (no download):

  debian-section   a package's one-line description -> its archive section (12 topical sections), from
                   `apt-cache dumpavail` (the bookworm package lists): "Real-time strategy game of ancient warfare" -> games
  man-section      a manual page's NAME summary -> its manual section (1, 2, 3, 5, 7, 8), from `apropos .`:
                   "complex hyperbolic cosine" -> section3

Both are deduplicated (a text that occurs under two labels is dropped), balanced by a per-class cap, and split
70 / 10 / 20 (train / validation / test) by group — the source package, or the page name — so that "foo" and
"foo-data" never sit on both sides of a split. Seeded; writes runs/transfer-data/<task>/{train,validation,test}.jsonl.
The man-page task depends on the manual pages installed; the package task only on the bookworm lists.
Usage (repo root): python3 bench/transfer/debian-tasks.py
"""
import collections, json, os, random, re, subprocess

SECTIONS = ["admin", "database", "editors", "games", "graphics", "mail", "math", "net", "science", "sound", "text", "web"]


def packages():
    """(text, label, group) for each package of SECTIONS in the archive lists."""
    out = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    for stanza in out.split("\n\n"):
        f = dict(re.findall(r"^(Package|Source|Section|Description): (.*)$", stanza, re.M))
        section = f.get("Section", "").split("/")[-1]  # contrib/net -> net
        if section in SECTIONS and f.get("Description"):
            yield f["Description"].strip(), section, f.get("Source", f["Package"]).split(" ")[0]


def manpages():
    out = subprocess.run(["apropos", "."], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"^(\S+) \((\d)\)\s+- (.+)$", line)  # "ldap.conf (5) - LDAP configuration file"; 3pm etc. skipped
        if m and m.group(2) in "123578":
            yield m.group(3).strip(), "section" + m.group(2), m.group(1)


def build(name, rows, cap, seed=13):
    labels = collections.defaultdict(set)
    for text, label, _ in rows:
        labels[text.lower()].add(label)
    seen, by_label = set(), collections.defaultdict(list)
    for text, label, group in rows:
        key = text.lower()
        if len(labels[key]) == 1 and key not in seen:
            seen.add(key)
            by_label[label].append((text, label, group))
    rng = random.Random(seed)
    kept = []
    for label in sorted(by_label):
        items = sorted(by_label[label])
        rng.shuffle(items)
        kept += items[:cap]
    groups = sorted({g for _, _, g in kept})
    rng.shuffle(groups)
    part = {g: ("train" if i < 0.7 * len(groups) else "validation" if i < 0.8 * len(groups) else "test")
            for i, g in enumerate(groups)}
    folder = os.path.join("runs/transfer-data", name)
    os.makedirs(folder, exist_ok=True)
    counts = collections.Counter()
    files = {s: open(os.path.join(folder, s + ".jsonl"), "w") for s in ("train", "validation", "test")}
    rng.shuffle(kept)
    for text, label, group in kept:
        files[part[group]].write(json.dumps({"text": text, "label": label}) + "\n")
        counts[part[group]] += 1
    for f in files.values():
        f.close()
    print(f"{name}: {len(by_label)} classes, {dict(counts)} -> {folder}")


if __name__ == "__main__":
    build("debian-section", list(packages()), cap=400)
    build("man-section", list(manpages()), cap=450)
