"""Text (or pre-split words) -> ``input_ids``, ``attention_mask``, ``word_ids`` and char offsets.

Tokenisation happens once per call, unpadded, so batches can be cut by token length and padded
only to the longest member of each batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import torch
from transformers import PreTrainedTokenizerBase

from mtst.errors import MtstError
from mtst.model.word_shapes import NO_SHAPE, text_token_shapes, token_shapes
from mtst.progress import progress_bar

logger = logging.getLogger("mtst")

NO_WORD = -1  # word_ids value for special tokens and padding


@dataclass(frozen=True)
class Tokenized:
    """One text, unpadded. ``offsets[i]`` is the (start, end) char span of token i in the text."""

    input_ids: list[int]
    word_ids: list[int]
    offsets: list[tuple[int, int]]
    truncated: bool
    shape_ids: list[int] = field(default_factory=list)  # word shape per token (mtst.model.word_shapes), if asked


class TextTokenizer:
    """Wraps a fast HF tokenizer with truncation at ``max_seq_length`` and a once-only warning."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_seq_length: int):
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.word_shapes = False  # also compute shape_ids (set by the model when a head reads them)
        self._warned = False

    def __call__(self, texts: Sequence[str] | Sequence[Sequence[str]], is_split_into_words: bool = False,
                 ids_only: bool = False, max_length: int | None = None) -> list[Tokenized]:
        """``ids_only`` leaves ``word_ids`` and ``offsets`` empty: embeddings need neither, and converting them
        to Python lists was over a third of the tokenisation time (measured on STS-B). ``max_length``: truncate
        there instead of at ``max_seq_length`` (0: not at all; long texts are then cut in windows by the caller)."""
        if len(texts) == 0:
            return []
        limit = self.max_seq_length if max_length is None else max_length
        enc = self.tokenizer(
            list(texts) if not is_split_into_words else [list(words) for words in texts],
            is_split_into_words=is_split_into_words,
            truncation=limit > 0,
            max_length=limit or None,
            verbose=False,  # untruncated texts above the tokenizer's model_max_length are expected here
            return_offsets_mapping=not ids_only,
            return_attention_mask=False,  # collate builds the padded mask
            return_token_type_ids=False,
        )
        items = [
            Tokenized(
                input_ids=enc["input_ids"][i],
                word_ids=[] if ids_only else [NO_WORD if w is None else w for w in enc.word_ids(i)],
                offsets=[] if ids_only else [tuple(o) for o in enc["offset_mapping"][i]],
                truncated=bool(enc.encodings[i].overflowing),
            )
            for i in range(len(texts))
        ]
        if self.word_shapes and not ids_only:
            items = [replace(item, shape_ids=token_shapes(item.word_ids, words) if is_split_into_words
                             else text_token_shapes(item.word_ids, item.offsets, words))
                     for item, words in zip(items, texts, strict=True)]
        self.warn_truncated(sum(item.truncated for item in items), limit)
        return items

    def warn_truncated(self, cut: int, limit: int) -> None:
        """Once per tokenizer: ``cut`` texts were truncated at ``limit`` tokens."""
        if cut and not self._warned:
            logger.warning("%d text(s) longer than max_seq_length=%d tokens were truncated", cut, limit)
            self._warned = True

    def collate(self, items: Sequence[Tokenized]) -> dict[str, torch.Tensor]:
        """Pad to the longest item: input_ids, attention_mask and word_ids, each (B, T) (word_ids all NO_WORD
        for ``ids_only`` items), and shape_ids when the items carry them. One tensor from padded lists: a tensor
        per row cost more than the lists."""
        lengths = [len(item.input_ids) for item in items]
        longest = max(lengths)
        pad_id = self.tokenizer.pad_token_id or 0
        rows = list(zip(items, lengths, strict=True))
        input_ids = torch.tensor([[*item.input_ids, *[pad_id] * (longest - n)] for item, n in rows], dtype=torch.long)
        attention_mask = (torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]).long()  # (B, T)
        word_ids = torch.tensor([[*(item.word_ids or [NO_WORD] * n), *[NO_WORD] * (longest - n)] for item, n in rows],
                                dtype=torch.long)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "word_ids": word_ids}
        if items and items[0].shape_ids:
            batch["shape_ids"] = torch.tensor([[*item.shape_ids, *[NO_SHAPE] * (longest - n)] for item, n in rows],
                                              dtype=torch.long)
        return batch

    def sorted_batches(self, items: Sequence[Tokenized], batch_size: int
                       ) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        """(indices, collated features) over ``items`` in length-sorted batches: the one loop behind evaluation,
        the training feature cache and the anchor's teacher pass, so all three pad the same way."""
        for indices in length_sorted_batches([len(item.input_ids) for item in items], batch_size):
            yield indices, self.collate([items[i] for i in indices])


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding stays small."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def token_budget_batches(lengths: Sequence[int], max_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Like length_sorted_batches, but each batch holds at most ``max_tokens`` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and (len(current) + 1) * longest > max_tokens or len(current) >= max_batch_size:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


BatchFn = Callable[[dict[str, torch.Tensor], Sequence[Tokenized], list[str]], list]


def map_batches(tokenizer: TextTokenizer, texts: list[str], batch_size: int, max_tokens: int | None,
                show_progress: bool, fn: BatchFn, ids_only: bool = False, max_length: int | None = None) -> list:
    """Tokenise once, call ``fn(batch, items, texts)`` on length-sorted batches (cut by a token budget when
    ``max_tokens`` is set) and return its per-text results in input order. Every runtime shares this.
    ``ids_only``: ``fn`` needs no word ids or offsets (embeddings), so they are not computed. ``max_length``:
    the tokenizer's (None: its ``max_seq_length``)."""
    items = tokenizer(texts, ids_only=ids_only, max_length=max_length)
    return map_items(tokenizer, items, texts, batch_size, max_tokens, show_progress, fn)


def map_items(tokenizer: TextTokenizer, items: Sequence[Tokenized], texts: Sequence[str], batch_size: int,
              max_tokens: int | None, show_progress: bool, fn: BatchFn) -> list:
    """``map_batches`` over items already tokenised (``texts[i]`` is ``items[i]``'s text: rows may share one)."""
    if batch_size < 1:
        raise MtstError(f"batch_size must be at least 1, got {batch_size}")
    results: list = [None] * len(texts)
    lengths = [len(item.input_ids) for item in items]
    batches = (token_budget_batches(lengths, max_tokens, batch_size) if max_tokens
               else length_sorted_batches(lengths, batch_size))
    with progress_bar(len(texts), "encoding", enabled=show_progress) as advance:
        for indices in batches:
            batch_items = [items[i] for i in indices]
            values = fn(tokenizer.collate(batch_items), batch_items, [texts[i] for i in indices])
            for index, value in zip(indices, values, strict=True):
                results[index] = value
            advance(len(indices))
    return results


def as_texts(sentences: Sequence[str] | str) -> list[str]:
    """One string or a sequence of strings -> a list of strings (an error names the first other type)."""
    if isinstance(sentences, str):
        return [sentences]
    texts = list(sentences)
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise MtstError(f"sentences must be strings, got {type(bad).__name__}")
    return texts
