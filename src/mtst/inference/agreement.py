"""Does an export compute what torch computes? Output parity on a few sentences, and label agreement
(arg-max label per sentence, per word for NER) on many."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from mtst.errors import MtstError
from mtst.inference.export import PARITY_SENTENCES, feeds_for, torch_outputs
from mtst.model.predictor import Predictor, as_predictor

if TYPE_CHECKING:
    from mtst.model.multitask import MultiTaskModel


def parity_report(model: MultiTaskModel, predictor: Predictor, sentences: list[str] | None = None
                  ) -> dict[str, float]:
    """Max |difference| per output and min embedding cosine between a torch model and an exported predictor.

    Pass a freshly loaded torch model: a model object that was just traced can drift (seen here).
    """
    runtime = predictor.runtime  # an exported runtime: it runs the whole graph on numpy feeds
    feeds = feeds_for(model, sentences or PARITY_SENTENCES)
    expected = torch_outputs(model, feeds)
    got = runtime.run_graph(feeds)
    report = {}
    for name, want in zip(runtime.output_names, expected, strict=True):
        report[f"{name}/max_abs_diff"] = float(np.abs(got[name] - want).max())
    a, b = got["sentence_embedding"], expected[0]
    cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    report["sentence_embedding/min_cosine"] = float(cosine.min())
    return report


# ---- label agreement: does a quantised export predict what torch predicts? ------------------------
def predicted_labels(runner: Predictor | MultiTaskModel, sentences: list[str], batch_size: int = 64) -> list[dict]:
    """Per sentence, every task's arg-max label: a string for sentence heads, one BIO tag per word for
    token heads (the word's first sub-token, as decoding does: ``head.best_labels``). ``runner`` is a
    MultiTaskModel or a predictor on any runtime; batches are length-sorted without a token budget on every
    runtime, so padding is the same on both sides."""
    from mtst.model.tokenization import map_batches

    runtime = as_predictor(runner).runtime
    tasks = list(runtime.heads)  # pair tasks predict nothing

    def run(batch: dict[str, torch.Tensor], items, texts: list[str]) -> list[dict]:
        logits = runtime.run(batch, tasks, False)["logits"]  # task -> (B, C) | (B, T, C), one pass per batch
        rows: list[dict] = [{} for _ in texts]
        with runtime.decoding():
            for task in tasks:
                for row, best in zip(rows, runtime.heads[task].best_labels(logits[task], items), strict=True):
                    row[task] = [best[word] for word in sorted(best)] if isinstance(best, dict) else best
        return rows

    with runtime.running(), torch.inference_mode():
        return map_batches(runtime.tokenizer, list(sentences), batch_size, None, False, run)


def label_agreement(reference: list[dict], candidate: list[dict]) -> dict[str, float]:
    """Share of equal predictions per task. Sentence tasks: ``task`` = share of sentences. Token tasks:
    ``task`` = share of words with the same tag (the unit a token head predicts) and ``task/sentences`` =
    share of sentences whose every tag is the same (one flipped word fails the sentence)."""
    if len(reference) != len(candidate):
        raise MtstError(f"cannot compare {len(reference)} reference rows with {len(candidate)} candidate rows")
    report: dict[str, float] = {}
    for task in (reference[0] if reference else {}):
        pairs = [(ref[task], cand[task]) for ref, cand in zip(reference, candidate, strict=True)]
        if isinstance(pairs[0][0], list):
            words = [a == b for ref_tags, cand_tags in pairs for a, b in zip(ref_tags, cand_tags, strict=True)]
            report[task] = float(np.mean(words)) if words else 1.0
            report[f"{task}/sentences"] = float(np.mean([a == b for a, b in pairs]))
        else:
            report[task] = float(np.mean([a == b for a, b in pairs]))
    return report
