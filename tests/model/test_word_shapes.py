"""Word shapes: the classes, their alignment to sub-tokens, and the cased/uncased decision."""

from __future__ import annotations

import pytest
from transformers import BertTokenizerFast

from mtst import MultiTaskModel
from mtst.model.word_shapes import NO_SHAPE, SHAPE_INDEX, is_uncased, text_token_shapes, token_shapes, word_shape


@pytest.mark.parametrize(("word", "shape"), [
    ("paris", "lower"), ("Paris", "capitalized"), ("NATO", "upper"), ("I", "single_upper"), ("1996", "digits"),
    ("3.5", "digits"), ("12/05", "digits"), ("F16", "alphanumeric"), ("eBay", "mixed_case"), ("McDonald", "mixed_case"),
    (",", "punctuation"), ("--", "punctuation"), ("Ölfeld", "capitalized"), ("ÉCOLE", "upper"), ("北京", "other"),
])
def test_each_word_gets_its_shape(word, shape):
    expected = SHAPE_INDEX[shape] if shape != "other" else word_shape("北京")
    assert word_shape(word) == expected
    assert word_shape("") == word_shape(" ") == NO_SHAPE


def test_every_sub_token_carries_its_words_shape(tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    words = ["John", "visited", "NEW", "york"]
    (item,) = model.tokenizer([words], is_split_into_words=True)
    shapes = token_shapes(item.word_ids, words)
    assert shapes[0] == shapes[-1] == NO_SHAPE  # [CLS], [SEP]
    by_word = {word: shape for word, shape in zip(item.word_ids, shapes, strict=True) if word >= 0}
    assert by_word == {0: SHAPE_INDEX["capitalized"], 1: SHAPE_INDEX["lower"], 2: SHAPE_INDEX["upper"],
                       3: SHAPE_INDEX["lower"]}
    text = "John  visited\tNEW york"
    (raw,) = model.tokenizer([text])
    assert text_token_shapes(raw.word_ids, raw.offsets, text) == shapes


def test_shape_ids_reach_the_batch_only_when_a_head_reads_them(tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    assert "shape_ids" not in model.tokenizer.collate(model.tokenizer(["John works"]))
    model.add_head("ner", "token_classification", ["O", "B-PER", "I-PER"], word_shape="on")
    batch = model.tokenizer.collate(model.tokenizer(["John works", "a"]))
    assert batch["shape_ids"].shape == batch["input_ids"].shape and int(batch["shape_ids"][1, -1]) == NO_SHAPE
    assert model.config.heads["ner"].word_shape_dim == 16


def test_auto_follows_the_backbone_casing(tiny_st_dir, tmp_path):
    assert is_uncased(MultiTaskModel.from_backbone(tiny_st_dir).tokenizer.tokenizer)  # lowercases
    cased = BertTokenizerFast.from_pretrained(str(tiny_st_dir), do_lower_case=False)
    assert not is_uncased(cased)
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.add_head("ner", "token_classification", ["O", "B-PER", "I-PER"], word_shape="auto")
    assert model.config.heads["ner"].word_shape_dim > 0
    model.tokenizer.tokenizer = cased
    model.add_head("ner2", "token_classification", ["O", "B-PER", "I-PER"], word_shape="auto")
    assert model.config.heads["ner2"].word_shape_dim == 0
