"""A six-class real text set for the audit's science check, built from Debian's fortune files (package
``fortunes``: quotations filed by topic, public since the 1980s; ``apt-get install fortunes``).

    python bench/data/fortunes.py OUT.csv    # text,label,split: 320 train and 80 test quotes per class

The rows are read from /usr/share/games/fortunes at run time and written outside the package (nothing of them is
copied into probe). Each quote is one text with its whitespace collapsed; quotes over 400 characters, and
duplicates, are left out; the choice and the split are seeded.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import tempfile
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
CLASSES = {
    "computers": "computers",
    "politics": "politics",
    "science": "science",
    "work": "work",
    "art": "art",
    "songs-poems": "poetry",
}
"""fortune file -> the class's label (one plain word, so the class-label init reads it)."""
TRAIN, TEST, LONGEST, SEED = 320, 80, 400, 0


def quotes(name: str) -> list[str]:
    text = (FORTUNES / name).read_text(encoding="utf-8", errors="replace")
    out = [re.sub(r"\s+", " ", q).strip() for q in text.split("\n%\n")]
    return sorted({q for q in out if 20 <= len(q) <= LONGEST})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="the CSV to write (text,label,split)")
    args = parser.parse_args()
    if not FORTUNES.is_dir():
        raise SystemExit(f"{FORTUNES} is missing; install Debian's fortune files: apt-get install fortunes")
    rng = random.Random(SEED)
    rows = []
    for name, label in CLASSES.items():
        chosen = quotes(name)
        rng.shuffle(chosen)
        if len(chosen) < TRAIN + TEST:
            raise SystemExit(f"{name}: {len(chosen)} quotes, fewer than {TRAIN + TEST}")
        rows += [(q, label, "train") for q in chosen[:TRAIN]] + [
            (q, label, "test") for q in chosen[TRAIN : TRAIN + TEST]
        ]
    out = Path(args.out)
    with tempfile.NamedTemporaryFile("w", dir=out.parent or ".", delete=False, newline="", suffix=".tmp") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "split"])
        writer.writerows(rows)
    os.replace(f.name, out)
    print(f"{out}: {len(rows)} rows, {len(CLASSES)} classes ({TRAIN} train / {TEST} test each)")


if __name__ == "__main__":
    main()
