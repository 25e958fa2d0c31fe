"""Sentence pairs: scored (STS-style, a similarity per pair) or positive (query-passage, duplicates).

A pair split is an ``Examples`` whose texts are ``(first, second)`` tuples and whose labels are float scores
(1.0 for positive pairs, which carry none), so splitting and sampling treat it like any other task.
Columns come from csv / tsv (``text_column``, ``text_pair_column``, ``label_column``) or jsonl keys.
"""

from __future__ import annotations

from mtst.data.readers import Examples
from mtst.data.rows import jsonl_rows, read_delimited
from mtst.data.sources import DataSource
from mtst.errors import MtstError


def read_pair_examples(source: DataSource, scored: bool) -> Examples:
    """One pair file -> Examples of (first, second) texts and float scores (the first ``max_examples``)."""
    if source.text_pair_column is None:
        raise MtstError(f"{source.path}: sentence pairs need text_pair_column (the second sentence's column)")
    columns = [source.text_column, source.text_pair_column] + ([source.label_column] if scored else [])
    if source.format in ("csv", "tsv"):
        rows, origins = read_delimited(source, columns)
    elif source.format == "jsonl":
        rows, origins = jsonl_rows(source, columns)
    else:
        raise MtstError(f"{source.path}: sentence pairs are read from csv, tsv or jsonl, not {source.format}")
    texts, scores = [], []
    for row, origin in zip(rows, origins, strict=True):
        first, second = row[0], row[1]
        if not all(isinstance(text, str) and text.strip() for text in (first, second)):
            raise MtstError(f"{origin}: both sentences of a pair must be non-empty strings")
        texts.append((first, second))
        scores.append(_score(row[2], origin) if scored else 1.0)
    limit = source.max_examples or len(texts)
    return Examples(texts[:limit], scores[:limit], origins[:limit])


def read_pairs(source: DataSource) -> tuple[list[str], list[str], list[float], list[str]]:
    """An STS-style file as (first sentences, second sentences, gold scores, origins) (evaluation.sts)."""
    pairs = read_pair_examples(source, scored=True)
    return [a for a, _ in pairs.texts], [b for _, b in pairs.texts], list(pairs.labels), list(pairs.origins)


def _score(value: object, origin: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise MtstError(f"{origin}: score '{value}' is not a number") from exc
