#!/usr/bin/env python3
"""Converts Debian's bible-kjv-text package (King James Version, public domain) into kjv.jsonl.gz: one row per chapter.

Usage: python3 convert.py
Needs Debian's `bible-kjv` and `bible-kjv-text` packages (apt-get install bible-kjv bible-kjv-text): their `bible`
program prints the verses of /usr/lib/bible.data, one a line ("Ge1:1 In the beginning ..."). Rows are in canonical
order with the book's full name, testament, a coarse division (law, history, wisdom, major-prophets, minor-prophets,
gospels-acts, pauline-epistles, general-epistles) and the chapter's verses joined with spaces. Reproducible byte for
byte (gzip without name or timestamp).
"""
import os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from npm_corpus import write_jsonl_gz  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kjv.jsonl.gz")

# (abbreviation the `bible` program prints, full name, division), in canonical order.
BOOKS = [
    ("Ge", "Genesis", "law"), ("Exo", "Exodus", "law"), ("Lev", "Leviticus", "law"), ("Num", "Numbers", "law"),
    ("Deu", "Deuteronomy", "law"), ("Josh", "Joshua", "history"), ("Jdgs", "Judges", "history"), ("Ruth", "Ruth", "history"),
    ("1Sm", "1 Samuel", "history"), ("2Sm", "2 Samuel", "history"), ("1Ki", "1 Kings", "history"), ("2Ki", "2 Kings", "history"),
    ("1Chr", "1 Chronicles", "history"), ("2Chr", "2 Chronicles", "history"), ("Ezra", "Ezra", "history"),
    ("Neh", "Nehemiah", "history"), ("Est", "Esther", "history"), ("Job", "Job", "wisdom"), ("Psa", "Psalms", "wisdom"),
    ("Prv", "Proverbs", "wisdom"), ("Eccl", "Ecclesiastes", "wisdom"), ("SSol", "Song of Solomon", "wisdom"),
    ("Isa", "Isaiah", "major-prophets"), ("Jer", "Jeremiah", "major-prophets"), ("Lam", "Lamentations", "major-prophets"),
    ("Eze", "Ezekiel", "major-prophets"), ("Dan", "Daniel", "major-prophets"), ("Hos", "Hosea", "minor-prophets"),
    ("Joel", "Joel", "minor-prophets"), ("Amos", "Amos", "minor-prophets"), ("Obad", "Obadiah", "minor-prophets"),
    ("Jonah", "Jonah", "minor-prophets"), ("Mic", "Micah", "minor-prophets"), ("Nahum", "Nahum", "minor-prophets"),
    ("Hab", "Habakkuk", "minor-prophets"), ("Zep", "Zephaniah", "minor-prophets"), ("Hag", "Haggai", "minor-prophets"),
    ("Zec", "Zechariah", "minor-prophets"), ("Mal", "Malachi", "minor-prophets"), ("Mat", "Matthew", "gospels-acts"),
    ("Mark", "Mark", "gospels-acts"), ("Luke", "Luke", "gospels-acts"), ("John", "John", "gospels-acts"),
    ("Acts", "Acts", "gospels-acts"), ("Rom", "Romans", "pauline-epistles"), ("1Cor", "1 Corinthians", "pauline-epistles"),
    ("2Cor", "2 Corinthians", "pauline-epistles"), ("Gal", "Galatians", "pauline-epistles"), ("Eph", "Ephesians", "pauline-epistles"),
    ("Phi", "Philippians", "pauline-epistles"), ("Col", "Colossians", "pauline-epistles"),
    ("1Th", "1 Thessalonians", "pauline-epistles"), ("2Th", "2 Thessalonians", "pauline-epistles"),
    ("1Tim", "1 Timothy", "pauline-epistles"), ("2Tim", "2 Timothy", "pauline-epistles"), ("Titus", "Titus", "pauline-epistles"),
    ("Phmn", "Philemon", "pauline-epistles"), ("Heb", "Hebrews", "general-epistles"), ("Jas", "James", "general-epistles"),
    ("1Pet", "1 Peter", "general-epistles"), ("2Pet", "2 Peter", "general-epistles"), ("1Jn", "1 John", "general-epistles"),
    ("2Jn", "2 John", "general-epistles"), ("3Jn", "3 John", "general-epistles"), ("Jude", "Jude", "general-epistles"),
    ("Rev", "Revelation", "general-epistles"),
]


def main():
    out = subprocess.run(["bible", "-f", "-l", "100000", "Ge1:1-Re22:21"], check=True, capture_output=True, text=True).stdout
    info = {a: (i, name, div) for i, (a, name, div) in enumerate(BOOKS)}
    rows, cur, verses = [], None, []

    def flush():
        if cur is not None:
            i, name, div = info[cur[0]]
            rows.append({"index": len(rows), "book": name, "testament": "old" if i < 39 else "new", "division": div,
                         "chapter": cur[1], "verses": len(verses), "text": " ".join(verses)})

    for line in out.splitlines():
        ref, _, text = line.partition(" ")
        book = ref.rstrip("0123456789:")
        chapter, verse = ref[len(book):].split(":")
        key = (book, int(chapter))
        if key != cur:
            flush()
            cur, verses = key, []
        verses.append(text.strip())
    flush()
    assert sum(r["verses"] for r in rows) == 31102, "expected the 31,102 verses of the KJV"
    write_jsonl_gz(OUT, rows)
    print(f"{len(rows)} chapters -> {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
