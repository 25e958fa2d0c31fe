"""Word tags from annotation-tool spans, and IOB1 tags rewritten as IOB2.

Spans: ``{"text": ..., "spans": [[start, end, label], ...]}`` (or ``{"start", "end", "label"}`` objects, as
Label Studio, doccano and spaCy export) with character offsets, ``end`` exclusive. The text is cut into words
by ``words_with_offsets``: a word is a run of letters, digits and underscores (``\\w+``), and every other
non-space character is a word of its own ("New York-based, 2024." -> New, York, -, based, ",", 2024, ".").
A span must start and end on word edges; whitespace at its edges is trimmed first.

IOB1 (CoNLL-2003 as first published) starts an entity with I- and uses B- only between two adjacent entities of
one type; IOB2 (what the strict metric and the heads expect) starts every entity with B-.
"""

from __future__ import annotations

import re

from mtst.errors import MtstError

WORD = re.compile(r"\w+|[^\w\s]")


def words_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) per word of ``text``, ``end`` exclusive."""
    return [(match.group(), match.start(), match.end()) for match in WORD.finditer(text)]


def _span_parts(span: object, origin: str) -> tuple[object, object, object]:
    """(start, end, raw label) of one span: a [start, end, label] list or a {"start", "end", "label"} object
    (Label Studio's {"labels": [name]} too)."""
    if isinstance(span, list | tuple) and len(span) == 3:
        return span[0], span[1], span[2]
    if isinstance(span, dict) and "start" in span and "end" in span:
        labels = span.get("labels")
        label = span.get("label", labels[0] if isinstance(labels, list) and len(labels) == 1 else None)
        return span["start"], span["end"], label
    raise MtstError(f"{origin}: a span is [start, end, label] or {{\"start\", \"end\", \"label\"}}, got {span!r:.60}")


def span_tags(text: str, spans: object, origin: str, name=str) -> tuple[list[str], list[str]]:
    """``text`` and its character spans -> (words, one BIO tag per word). ``name`` turns a raw span label into a
    label name (label_map). A span that is out of range, empty, cuts a word or overlaps another is an error."""
    if not isinstance(text, str) or not text.strip():
        raise MtstError(f"{origin}: text must be a non-empty string, got {text!r:.60}")
    if not isinstance(spans, list):
        raise MtstError(f"{origin}: spans must be a list of [start, end, label], got {spans!r:.60}")
    words = words_with_offsets(text)
    starts = {start: index for index, (_, start, _) in enumerate(words)}
    ends = {end: index for index, (_, _, end) in enumerate(words)}
    tags = ["O"] * len(words)
    taken: list[tuple[int, int]] = []
    for span in spans:
        start, end, raw = _span_parts(span, origin)
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or isinstance(end, bool):
            raise MtstError(f"{origin}: span offsets must be integers, got [{start!r}, {end!r}]")
        if not 0 <= start < end <= len(text):
            raise MtstError(f"{origin}: span [{start}, {end}] is out of range for a text of {len(text)} characters "
                            "(0 <= start < end <= length, end exclusive)")
        label = name(raw)
        inner = text[start:end]
        left, right = start + len(inner) - len(inner.lstrip()), end - len(inner) + len(inner.rstrip())
        if left >= right:
            raise MtstError(f"{origin}: span [{start}, {end}] covers only whitespace")
        if left not in starts or right not in ends:
            cut = next(word for word, a, b in words if a < (left if left not in starts else right) < b)
            raise MtstError(f"{origin}: span [{start}, {end}] '{text[start:end]}' cuts the word '{cut}'; spans must "
                            "start and end on word edges (words are runs of letters/digits or one punctuation mark)")
        first, last = starts[left], ends[right]
        for a, b in taken:
            if first <= b and a <= last:
                raise MtstError(f"{origin}: span [{start}, {end}] '{text[start:end]}' overlaps another span; "
                                "token tags allow one entity per word")
        taken.append((first, last))
        tags[first] = f"B-{label}"
        tags[first + 1 : last + 1] = [f"I-{label}"] * (last - first)
    return [word for word, _, _ in words], tags


def _starts_entity(tags: list[str], index: int) -> bool:
    """Tag ``index`` (B- or I-) begins an entity: the tag before it is O or of another type."""
    return index == 0 or tags[index - 1] == "O" or tags[index - 1][2:] != tags[index][2:]


def looks_like_iob1(sequences: list[list[str]]) -> bool:
    """Some entity starts with I- and none starts with B- after an O or another type (where IOB2 needs B-)."""
    i_start = b_start = False
    for tags in sequences:
        for index, tag in enumerate(tags):
            if tag != "O" and _starts_entity(tags, index):
                i_start |= tag.startswith("I-")
                b_start |= tag.startswith("B-")
    return i_start and not b_start


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """An I- tag that begins an entity becomes B-; every other tag stays (IOB2 input comes back unchanged)."""
    return [f"B-{tag[2:]}" if tag.startswith("I-") and _starts_entity(tags, index) else tag
            for index, tag in enumerate(tags)]
