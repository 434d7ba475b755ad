#!/usr/bin/env python3
"""Converts Debian's wordnet-base package (Princeton WordNet 3.0) into wordnet.jsonl.gz: one row per synset.

Usage: python3 convert.py   (needs `apt-get install wordnet-base`: it reads /usr/share/wordnet/data.{noun,verb,adj,adv})
Each row: the synset's offset and part of speech, its lexicographer file (the supersense, e.g. noun.animal, from the
lex_filenum field and the table of lexnames(5WN)), its lemmas (underscores as spaces) and its gloss (definition and
quoted examples, as WordNet writes it). Rows in file order noun, verb, adj, adv. Reproducible byte for byte.
"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from npm_corpus import write_jsonl_gz  # noqa: E402

SRC = "/usr/share/wordnet"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wordnet.jsonl.gz")

# lexnames(5WN): lexicographer file number -> name.
LEXNAMES = ("adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
            "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive "
            "noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity "
            "noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change verb.cognition "
            "verb.communication verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
            "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl").split()
assert len(LEXNAMES) == 45


def main():
    rows = []
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(SRC, "data." + pos), encoding="utf-8") as f:
            for line in f:
                if line.startswith("  "):  # the licence header
                    continue
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                offset, lexnum, n = fields[0], int(fields[1]), int(fields[3], 16)
                lemmas = [fields[4 + 2 * k].replace("_", " ") for k in range(n)]
                # adjective markers such as "(a)" or "(p)" end some lemmas
                lemmas = [l.split("(")[0] if l.endswith(")") else l for l in lemmas]
                rows.append({"offset": offset, "pos": pos, "lexname": LEXNAMES[lexnum], "lemmas": lemmas,
                             "gloss": gloss.strip()})
    write_jsonl_gz(OUT, rows, compact=True)
    print(f"{len(rows)} synsets -> {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
