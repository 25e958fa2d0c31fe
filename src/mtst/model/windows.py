"""Long texts for token tasks: overlapping token windows cut at word boundaries, and per-word stitching.

A text longer than the window (``max_seq_length`` tokens with [CLS] and [SEP]) is tokenised once, untruncated;
its inner tokens are cut into windows of at most ``max_seq_length - 2`` tokens that overlap by ``stride`` tokens
(as the transformers token-classification pipeline's ``stride``), each ending before a word starts. A single
word longer than a window is cut into window-sized pieces, so the words after it are still tagged. Each window
runs as an extra row of the batch; ``stitch`` then builds one logits row over the whole text, each word's values
taken from the window where its first sub-token sits furthest from an edge, and the head decodes that row once
against the untruncated item: entities merge across windows and offsets are the original text's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from mtst.errors import MtstError
from mtst.model.tasks import task_type
from mtst.model.tokenization import NO_WORD, Tokenized


@dataclass(frozen=True)
class Window:
    """Inner tokens ``start..end`` (end exclusive) of an untruncated item (position 0 is its [CLS])."""

    start: int
    end: int


def default_stride(max_seq_length: int) -> int:
    """Tokens two windows share when the caller does not say: a quarter of the window."""
    return max(0, (max_seq_length - 2) // 4)


def cut_windows(item: Tokenized, max_seq_length: int, stride: int) -> list[Window]:
    """Windows over ``item``'s inner tokens (positions 1..n-2), each at most ``max_seq_length - 2`` tokens, ending
    at a word boundary where one exists, the next starting ``stride`` tokens (or the word start after) before."""
    size = max_seq_length - 2
    first, last = 1, len(item.input_ids) - 1  # inner tokens: [first, last)
    words = item.word_ids

    def starts_word(position: int) -> bool:
        return position >= last or words[position] != words[position - 1]

    windows: list[Window] = []
    start = first
    while True:
        end = min(start + size, last)
        if end < last:
            boundary = next((p for p in range(end, start, -1) if starts_word(p)), None)
            end = boundary or end  # no boundary: one word longer than the window, cut in pieces
        windows.append(Window(start, end))
        if end >= last:
            return windows
        next_start = max(end - min(stride, size - 1), start + 1)
        while next_start < end and not starts_word(next_start):
            next_start += 1  # overlap begins at a word start
        start = next_start


def window_item(item: Tokenized, window: Window) -> Tokenized:
    """The window as an item of its own: [CLS] + its inner tokens + [SEP], offsets into the original text."""
    s, e = window.start, window.end
    last = len(item.input_ids) - 1
    return replace(
        item,
        input_ids=[item.input_ids[0], *item.input_ids[s:e], item.input_ids[last]],
        word_ids=[NO_WORD, *item.word_ids[s:e], NO_WORD],
        offsets=[(0, 0), *item.offsets[s:e], (0, 0)],
        truncated=False,
        shape_ids=[item.shape_ids[0], *item.shape_ids[s:e], item.shape_ids[last]] if item.shape_ids else [],
    )


def truncated_item(item: Tokenized, max_seq_length: int) -> Tokenized:
    """``item`` cut as the tokenizer's truncation cuts it: the first ``max_seq_length - 2`` inner tokens."""
    if len(item.input_ids) <= max_seq_length:
        return item
    keep = max_seq_length - 1
    last = len(item.input_ids) - 1

    def cut(values: list) -> list:
        return [*values[:keep], values[last]] if values else []

    return replace(item, input_ids=cut(item.input_ids), word_ids=cut(item.word_ids), offsets=cut(item.offsets),
                   shape_ids=cut(item.shape_ids), truncated=True)


def stitch(item: Tokenized, windows: Sequence[Window], logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """(T, C) logits over the untruncated ``item`` from each window's (t_w, C) logits (window positions include
    its [CLS] at 0): every position takes the values of the window where its word's first sub-token is furthest
    from an edge (the earlier window on a tie); positions no window holds ([CLS], [SEP]) stay zero."""
    first: dict[int, int] = {}
    for position, word in enumerate(item.word_ids):
        if word != NO_WORD and word not in first:
            first[word] = position
    out = torch.zeros(len(item.input_ids), logits[0].shape[-1], dtype=logits[0].dtype)
    best = [-2] * len(item.input_ids)  # the distance of the window each position took its values from
    for window, values in zip(windows, logits, strict=True):
        for position in range(window.start, window.end):
            word = item.word_ids[position]
            anchor = first.get(word, position)
            distance = min(anchor - window.start, window.end - 1 - anchor) if window.start <= anchor < window.end \
                else -1
            if distance > best[position]:
                best[position] = distance
                out[position] = values[position - window.start + 1]
    return out


def windowed_rows(items: Sequence[Tokenized], limit: int, stride: int | None, windowed: bool, own_row: bool = True
                  ) -> tuple[list[Tokenized], list[int], dict[int, tuple[list[int], list[Window]]]]:
    """The rows a predict batch runs: each text's item cut at ``limit`` tokens (rows 0..N-1, in order), then,
    when ``windowed``, the windows of each longer text, sharing ``stride`` tokens (None: ``default_stride``).
    ``own_row`` False: nothing reads the cut item, so a windowed text's row N is its first window instead.
    Returns the rows, each row's text index, and per windowed text (its windows' rows, its windows)."""
    stride = default_stride(limit) if stride is None else stride
    if stride < 0:
        raise MtstError(f"stride must be 0 or more tokens, got {stride}")
    rows = [truncated_item(item, limit) for item in items]
    owners = list(range(len(items)))
    windows: dict[int, tuple[list[int], list[Window]]] = {}
    if windowed:
        for index, item in enumerate(items):
            if len(item.input_ids) > limit:
                cuts = cut_windows(item, limit, stride)
                extra = cuts if own_row else cuts[1:]
                windows[index] = ([*([] if own_row else [index]), *range(len(rows), len(rows) + len(extra))], cuts)
                if not own_row:
                    rows[index] = window_item(item, cuts[0])
                rows.extend(window_item(item, cut) for cut in extra)
                owners.extend([index] * len(extra))
    return rows, owners, windows


def stitched_rows(done: list[dict], count: int, windows: dict[int, tuple[list[int], list[Window]]],
                  items: Sequence[Tokenized], heads: dict) -> list[dict]:
    """The first ``count`` prediction rows (one per text), each windowed text's token tasks (``heads``, name ->
    head) replaced by one decode of its stitched logits (each row's ``"_logits"``, dropped here)."""
    results = done[:count]
    for index, (positions, cuts) in windows.items():
        text = results[index]["text"]
        for task, head in heads.items():
            logits = stitch(items[index], cuts, [done[position]["_logits"][task] for position in positions])
            results[index][task] = head.decode(logits[None], [items[index]], [text])[0]
    for row in results:
        row.pop("_logits", None)
    return results


# ---- chunked mode: sentence heads and the embedding over every chunk of a long text ------------------------------
def chunked_rows(items: Sequence[Tokenized], limit: int, stride: int | None) -> tuple[list[Tokenized], list[int]]:
    """Each item as it is when it fits ``limit`` tokens, else its windows; returns the rows and each one's item."""
    stride = default_stride(limit) if stride is None else stride
    rows: list[Tokenized] = []
    owners: list[int] = []
    for index, item in enumerate(items):
        chunks = [item] if len(item.input_ids) <= limit else [window_item(item, cut)
                                                               for cut in cut_windows(item, limit, stride)]
        rows.extend(chunks)
        owners.extend([index] * len(chunks))
    return rows, owners


def mean_vectors(vectors: Sequence[np.ndarray], owners: Sequence[int], count: int, normalize: bool
                 ) -> list[np.ndarray]:
    """Per owner the mean of its vectors (float32), L2-normalised again when ``normalize`` and there were several."""
    groups: list[list[np.ndarray]] = [[] for _ in range(count)]
    for vector, owner in zip(vectors, owners, strict=True):
        groups[owner].append(np.asarray(vector, dtype=np.float32))
    out = []
    for group in groups:
        mean = np.mean(group, axis=0, dtype=np.float32) if len(group) > 1 else group[0]
        if normalize and len(group) > 1:
            mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
        out.append(mean.astype(np.float32))
    return out


def pooled_prediction(rows: Sequence[dict], head) -> dict:
    """One sentence task's prediction from its windows' rows: the mean of each label's probability, decoded as the
    head decodes one row. Multi-label (``{"labels", "scores"}``): the labels at or above the head's own thresholds
    (``head.chosen``); softmax (``{"label", "score", "distribution"}``): the most probable, None below the head's
    threshold."""
    if task_type(head.config.type).multi_label:
        names = list(rows[0]["scores"])
        mean = torch.tensor([[row["scores"][name] for name in names] for row in rows]).mean(dim=0)  # (C,)
        return {"labels": head.chosen(mean[None])[0], "scores": dict(zip(names, mean.tolist(), strict=True))}
    names = list(rows[0]["distribution"])
    mean = [sum(row["distribution"][name] for row in rows) / len(rows) for name in names]
    best = max(range(len(mean)), key=mean.__getitem__)
    threshold = getattr(head.config, "threshold", None)
    return {"label": None if threshold is not None and mean[best] < threshold else names[best],
            "score": mean[best], "distribution": dict(zip(names, mean, strict=True))}


def pool_chunks(done: list[dict], results: list[dict], windows: dict[int, tuple[list[int], list[Window]]],
                heads: dict, embedding: bool, normalize: bool) -> None:
    """Chunked predict: each windowed text's sentence tasks (``heads``, name -> head) become the mean of its
    windows' probabilities (``pooled_prediction``), and its embedding the mean of theirs (normalised again when
    the model normalises); in place on ``results``."""
    for index, (positions, _) in windows.items():
        rows = [done[position] for position in positions]
        for task, head in heads.items():
            results[index][task] = pooled_prediction([row[task] for row in rows], head)
        if embedding:
            vectors = [np.asarray(row["embedding"], dtype=np.float32) for row in rows]
            results[index]["embedding"] = mean_vectors(vectors, [0] * len(rows), 1, normalize)[0].tolist()
        results[index].pop("truncated", None)
