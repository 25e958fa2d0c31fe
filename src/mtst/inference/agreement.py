"""Does an export compute what torch computes? Output parity on a few sentences, and label agreement
(arg-max label per sentence, per word for NER) on many."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from mtst.errors import MtstError
from mtst.inference.export import PARITY_SENTENCES, feeds_for, graph_inputs, torch_outputs

if TYPE_CHECKING:
    from mtst.model.multitask import MultiTaskModel


def parity_report(model: MultiTaskModel, predictor, sentences: list[str] | None = None) -> dict[str, float]:
    """Max |difference| per output and min embedding cosine between a torch model and an export.

    Pass a freshly loaded torch model: a model object that was just traced can drift (seen here).
    """
    feeds = feeds_for(model, sentences or PARITY_SENTENCES)
    expected = torch_outputs(model, feeds)
    got = predictor.run_graph(feeds)
    report = {}
    for name, want in zip(predictor.output_names, expected, strict=True):
        report[f"{name}/max_abs_diff"] = float(np.abs(got[name] - want).max())
    a, b = got["sentence_embedding"], expected[0]
    cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    report["sentence_embedding/min_cosine"] = float(cosine.min())
    return report


# ---- label agreement: does a quantised export predict what torch predicts? ------------------------
def predicted_labels(runner, sentences: list[str], batch_size: int = 64) -> list[dict]:
    """Per sentence, every task's arg-max label: a string for sentence heads, one BIO tag per word for
    token heads (the word's first sub-token, as decoding does). ``runner`` is a MultiTaskModel or an
    exported predictor; both cut the same length-sorted batches, so padding is the same on both sides."""
    from mtst.model.spans import first_subtokens
    from mtst.model.tokenization import map_batches

    heads = {task: runner.heads[task] for task in runner.tasks}  # pair tasks predict nothing

    def logits_of(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # one graph / forward run per batch
        if hasattr(runner, "run_graph"):
            out = runner.run_graph(feeds)
            return {task: out[f"logits_{task}"] for task in heads}
        return dict(zip(heads, torch_outputs(runner, feeds)[1:], strict=True))

    inputs = graph_inputs(runner.config)

    def run(batch: dict[str, torch.Tensor], items, texts: list[str]) -> list[dict]:
        logits = logits_of({name: batch[name].numpy() for name in inputs})  # task -> (B, C) | (B, T, C)
        rows: list[dict] = [{} for _ in texts]
        for task, head in heads.items():
            scores = torch.from_numpy(np.ascontiguousarray(logits[task], dtype=np.float32))
            token = head.reads == "token_embeddings"
            best = (head.best_tags(scores, items) if token else scores.argmax(-1)).numpy()  # (B,) | (B, T)
            for row, item, winner in zip(rows, items, best, strict=True):
                if winner.ndim == 0:
                    row[task] = head.labels[int(winner)]
                else:
                    first = first_subtokens(item.word_ids)
                    row[task] = [head.labels[int(winner[first[word]])] for word in sorted(first)]
        return rows

    with torch.inference_mode():
        return map_batches(runner.tokenizer, list(sentences), batch_size, None, False, run)


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
