"""From sub-tokens back to words and character spans: first sub-token per word, word spans, BIO -> entities."""

from __future__ import annotations

from collections.abc import Sequence

from mtst.model.tokenization import NO_WORD, Tokenized


def first_subtokens(word_ids: Sequence[int]) -> dict[int, int]:
    """word index -> position of its first sub-token."""
    first: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word != NO_WORD and word not in first:
            first[word] = position
    return first


def word_spans(item: Tokenized) -> dict[int, tuple[int, int]]:
    """word index -> (start, end) character span in the original text."""
    spans: dict[int, tuple[int, int]] = {}
    for word, (start, end) in zip(item.word_ids, item.offsets, strict=True):
        if word == NO_WORD:
            continue
        old = spans.get(word)
        spans[word] = (start, end) if old is None else (min(old[0], start), max(old[1], end))
    return spans


def bio_to_entities(labelled: Sequence[tuple[tuple[int, int], str, float]], text: str) -> list[dict]:
    """Words as ((start, end), BIO label, score) -> entity dicts; a stray I- starts a new entity."""
    entities: list[dict] = []
    current: dict | None = None
    scores: list[float] = []

    def close() -> None:
        nonlocal current
        if current is not None:
            current["score"] = sum(scores) / len(scores)
            current["text"] = text[current["start"] : current["end"]]
            entities.append(current)
        current = None

    for (start, end), label, score in labelled:
        prefix, _, kind = label.partition("-")
        if prefix not in ("B", "I") or not kind:
            close()
            continue
        if prefix == "B" or current is None or current["label"] != kind:
            close()
            current = {"text": "", "label": kind, "start": start, "end": end, "score": 0.0}
            scores = []
        current["end"] = end
        scores.append(score)
    close()
    return entities
