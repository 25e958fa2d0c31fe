"""The BIO-constrained CRF and what token heads decode: always valid BIO, exact character spans."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtst import MultiTaskModel
from mtst.errors import MtstError
from mtst.model.config import HeadConfig
from mtst.model.crf import PENALTY, BioCRF, bio_constraints
from mtst.model.heads import IGNORE_INDEX
from mtst.model.spans import first_subtokens
from mtst.model.tasks import task_type

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def valid_bio(tags: list[str]) -> bool:
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def test_constraints_forbid_exactly_the_invalid_moves():
    start, moves = bio_constraints(LABELS)
    assert start.tolist() == [0, 0, PENALTY, 0, PENALTY]
    allowed = {(a, b) for i, a in enumerate(LABELS) for j, b in enumerate(LABELS) if moves[i, j] == 0}
    assert ("B-PER", "I-PER") in allowed and ("I-PER", "I-PER") in allowed and ("O", "B-LOC") in allowed
    assert not {("O", "I-PER"), ("B-LOC", "I-PER"), ("I-LOC", "I-PER")} & allowed


def test_crf_decoding_never_returns_an_invalid_path_and_learns():
    crf = BioCRF(LABELS)
    emissions = torch.randn(8, 7, 5)
    emissions[..., 2] += 5.0  # every word wants I-PER on its own
    paths = crf.decode(emissions, torch.ones(8, 7, dtype=torch.bool))
    assert all(valid_bio([LABELS[t] for t in path]) for path in paths)
    assert sorted(crf.state_dict()) == ["end_transitions", "start_transitions", "transitions"]  # no buffers saved
    tags = torch.tensor([[1, 2, 0, 3, 4, 0, 0]] * 8)
    loss = crf.loss(emissions, tags, torch.ones(8, 7, dtype=torch.bool))
    loss.backward()
    assert crf.transitions.grad.abs().sum() > 0


def test_crf_marginals_are_the_tag_probabilities_summed_over_every_path():
    crf = BioCRF(["O", "B-X", "I-X"])
    emissions, mask = torch.randn(1, 3, 3), torch.ones(1, 3, dtype=torch.bool)
    paths = torch.tensor(list(itertools.product(range(3), repeat=3)))  # all 27 tag sequences of 3 words
    probs = crf.log_likelihood(emissions.expand(len(paths), -1, -1), paths, mask.expand(len(paths), -1)).exp()
    expected = torch.stack([(probs[:, None] * (paths[:, word, None] == torch.arange(3))).sum(0)
                            for word in range(3)])
    assert torch.allclose(crf.marginals(emissions, mask)[0], expected, atol=1e-5)
    with torch.inference_mode():  # how predict calls it: inputs made under inference mode
        emissions, mask = emissions.clone(), mask.clone()
        assert torch.allclose(crf.marginals(emissions, mask)[0], expected, atol=1e-5)


def _random_batch(seed: int, num_tags: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """emissions (B, W, C), tags (B, W) and a left-packed mask (B, W) of sentences 1..W words long."""
    generator = torch.Generator().manual_seed(seed)
    batch, width = 6, 9
    emissions = torch.randn(batch, width, num_tags, generator=generator) * 4.0
    tags = torch.randint(num_tags, (batch, width), generator=generator)
    lengths = torch.randint(1, width + 1, (batch,), generator=generator)
    lengths[0] = width  # one full row, so the batch is as wide as its longest sentence
    return emissions, tags, torch.arange(width)[None, :] < lengths[:, None]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("labels", [LABELS, ["O", "B-X", "I-X"], ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG",
                                                                  "I-ORG", "B-PER", "I-PER"]])
def test_crf_matches_pytorch_crf(seed, labels):
    """Our CRF is pytorch-crf's arithmetic (which trained the shipped model) with the BIO penalties added."""
    torchcrf = pytest.importorskip("torchcrf")
    torch.manual_seed(seed)
    crf = BioCRF(labels)
    with torch.no_grad():  # learned scores large enough to matter next to the emissions
        for parameter in crf.parameters():
            parameter.normal_(0.0, 2.0)
    reference = torchcrf.CRF(len(labels), batch_first=True)
    start, moves, end = crf.scores()
    with torch.no_grad():  # pytorch-crf holding the penalised scores as its own parameters
        reference.start_transitions.copy_(start), reference.transitions.copy_(moves)
        reference.end_transitions.copy_(end)
    emissions, tags, mask = _random_batch(seed, len(labels))
    tags = tags.masked_fill(~mask, 0)

    loss = crf.loss(emissions, tags, mask)
    expected = -reference(emissions, tags, mask, reduction="token_mean")
    assert torch.allclose(loss, expected, rtol=0.0, atol=1e-6)
    loss.backward(), expected.backward()  # the same training signal
    assert torch.allclose(crf.transitions.grad, reference.transitions.grad, atol=1e-6)
    assert torch.allclose(crf.start_transitions.grad, reference.start_transitions.grad, atol=1e-6)
    assert torch.allclose(crf.end_transitions.grad, reference.end_transitions.grad, atol=1e-6)

    assert crf.decode(emissions, mask) == reference.decode(emissions, mask)

    # d log P(tags) / d emissions = one_hot(tags) - marginals on the words: pytorch-crf's marginals by its public API
    scored = emissions.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(reference(scored, tags, mask, reduction="sum"), scored)
    gold = torch.nn.functional.one_hot(tags, len(labels)).float() * mask.unsqueeze(-1)
    assert torch.allclose(crf.marginals(emissions, mask), (gold - gradient).clamp(0.0, 1.0), rtol=0.0, atol=1e-6)


def test_crf_rejects_a_sentence_without_a_first_word():
    crf = BioCRF(LABELS)
    with pytest.raises(ValueError, match="first word"):
        crf.decode(torch.randn(2, 3, 5), torch.tensor([[True, True, False], [False, False, False]]))


def _crf_head():
    return task_type("token_classification").build_head(
        HeadConfig(type="token_classification", labels=LABELS, input_dim=4, crf=True))


def test_crf_head_loss_counts_first_sub_tokens_and_skips_empty_rows():
    head = _crf_head()
    logits = torch.randn(3, 5, 5, requires_grad=True)
    labels = torch.tensor([[IGNORE_INDEX, 1, 2, IGNORE_INDEX, IGNORE_INDEX],
                           [IGNORE_INDEX] * 5,  # every word cut off: no path to score
                           [IGNORE_INDEX, 0, IGNORE_INDEX, 3, IGNORE_INDEX]])
    loss = head.loss(logits, labels)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad[1].abs().sum() == 0 and logits.grad[0, 1].abs().sum() > 0
    assert logits.grad[0, 3].abs().sum() == 0  # a later sub-token is not a word


def test_crf_head_loss_of_a_batch_of_different_lengths_is_the_word_weighted_mean_of_its_sentences():
    head = _crf_head()
    logits = torch.randn(2, 6, 5)
    labels = torch.tensor([[IGNORE_INDEX, 1, 2, 0, IGNORE_INDEX, 0],  # four words
                           [IGNORE_INDEX, 3, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]])  # one
    alone = [head.loss(logits[row:row + 1], labels[row:row + 1]) for row in range(2)]
    assert torch.allclose(head.loss(logits, labels), (4 * alone[0] + alone[1]) / 5)


def test_sentence_heads_reject_token_options():
    config = HeadConfig(type="sentence_classification", labels=["a", "b"], input_dim=4, crf=True)
    with pytest.raises(MtstError, match="token-head options"):
        task_type(config.type).build_head(config)


WORD = st.sampled_from(["John", "smith", "PARIS", "Ölfeld", "北京", "naïve", "3.5", "(", ")", "-", "x", "e\u0301",
                        "New", "york", "ACME", "corp", "!", "\u00e9t\u00e9", "ß"])
SPACE = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u3000", " \u2003 "])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(WORD, min_size=1, max_size=12), spaces=st.lists(SPACE, min_size=12, max_size=12),
       lead=SPACE, seed=st.integers(0, 2**16), crf=st.booleans(), head_type=st.sampled_from(
           ["token_classification", "windowed_token_classification"]))
def test_decoded_entities_are_valid_spans_of_the_original_text(tiny_st_dir, words, spaces, lead, seed, crf,
                                                               head_type):
    text = lead + "".join(word + space for word, space in zip(words, spaces, strict=False)).rstrip(" ")
    torch.manual_seed(seed)
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.add_head("ner", head_type, LABELS, hidden_dim=8, word_shape="on", crf=crf)
    torch.nn.init.normal_(model.heads["ner"].classifier.weight, std=3.0)  # decisive, varied scores
    (row,) = model.predict([text])
    entities = row["ner"]
    end = -1
    for entity in entities:
        assert entity["label"] in ("PER", "LOC") and 0 <= entity["start"] < entity["end"] <= len(text)
        assert text[entity["start"] : entity["end"]] == entity["text"] and entity["start"] >= end
        assert entity["text"] == entity["text"].strip() and 0.0 <= entity["score"] <= 1.0
        end = entity["end"]
    if crf:  # the tag sequence itself is valid BIO, not only the repaired spans
        batch = model.tokenizer.collate(items := model.tokenizer([text]))
        with torch.no_grad():
            logits = model(batch, tasks=["ner"])["logits"]["ner"]
        best = model.heads["ner"].best_tags(logits, items)[0]
        first = first_subtokens(items[0].word_ids)
        assert valid_bio([LABELS[int(best[first[word]])] for word in sorted(first)])
