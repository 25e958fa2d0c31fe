"""Checks that mtst's built-in int8 calibration sentences share no sentence with the evaluation data.

    .venv/bin/python benchmarks/speed/check_calibration.py      # needs ../shared/data

src/mtst/calibration.txt is hand-written (captions, headlines, news, reviews, questions, chat, instructions,
technical and long sentences; nothing copied from a data set). Calibrating on natural, varied text is what
lifted int8 task agreement (docs/performance.md); this script makes sure none of it is a benchmark sentence:
it compares lower-cased alphanumeric forms with every STS-B, SST-2, AG News and CoNLL-2003 sentence.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prepare import DATA  # noqa: E402


def normal(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def evaluation_sentences(data: Path = DATA) -> set[str]:
    seen: set[str] = set()
    for path in sorted((data / "stsb").glob("sts-*.csv")):
        with path.open(encoding="utf-8") as handle:
            for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                seen.update(normal(text) for text in row[5:7])
    for path in sorted((data / "sst2").glob("*.tsv")):
        seen.update(normal(line.split("\t")[0]) for line in path.read_text(encoding="utf-8").splitlines())
    with (data / "ag_news" / "test.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle):
            seen.update(normal(text) for text in row[1:3])
    for path in sorted((data / "conll2003").glob("*.txt")):
        words: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines() + [""]:
            if line.strip():
                words.append(line.split()[0])
            elif words:
                seen.add(normal(" ".join(words)))
                words = []
    return seen


def main() -> None:
    from mtst.inference.quantize import read_calibration

    sentences = read_calibration(None)
    shared = [text for text in sentences if normal(text) in evaluation_sentences()]
    print(f"{len(sentences)} calibration sentences, {len(set(sentences))} distinct, "
          f"{len(shared)} also in the evaluation data{': ' + '; '.join(shared) if shared else ''}")
    sys.exit(1 if shared else 0)


if __name__ == "__main__":
    main()
