"""Plain helpers tests import (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from mtst.training.config import TrainConfig

# Enough real words for readable tests; everything else maps to [UNK] or sub-word pieces.
VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", "'", "-", "(", ")",
    "a", "the", "is", "in", "at", "of", "and", "to", "on", "was", "works", "lives", "visited",
    "john", "smith", "mary", "paris", "london", "new", "york", "google", "acme", "corp",
    "cat", "dog", "sat", "mat", "good", "bad", "great", "terrible", "movie", "film", "market",
    "stock", "fell", "rose", "today", "play", "game", "team", "won", "guitar", "man",
    "##s", "##ed", "##ing", "##er", "##ly", "un", "##believ", "##able", "x", "y", "z",
]


def build_tiny_encoder(directory: Path, sentence_transformers_layout: bool = False) -> Path:
    """A 2-layer BERT (hidden 32) with a small WordPiece vocab, saved as a local directory."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = {token: index for index, token in enumerate(VOCAB)}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True, model_max_length=64)
    tokenizer.save_pretrained(str(directory))
    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(directory))
    if sentence_transformers_layout:
        (directory / "1_Pooling").mkdir(exist_ok=True)
        (directory / "1_Pooling" / "config.json").write_text(
            '{"word_embedding_dimension": 32, "pooling_mode_cls_token": false,'
            ' "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false}'
        )
        (directory / "modules.json").write_text(
            '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},'
            ' {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},'
            ' {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]'
        )
        (directory / "sentence_bert_config.json").write_text('{"max_seq_length": 48, "do_lower_case": false}')
    return directory



BULK_WORDS = ["the", "cat", "sat", "on", "mat", "john", "visited", "paris", "stock", "fell", "today", "great", "film"]


def write_random_lines(path: Path, count: int, max_words: int, empty_line: int, seed: int) -> list[str]:
    """``count`` lines of 1..max_words random words (line ``empty_line`` empty), written to ``path``."""
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(BULK_WORDS, size=int(rng.integers(1, max_words)))) for _ in range(count)]
    lines[empty_line] = ""  # an empty line still gets a row, so rows and lines stay aligned
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


class Killed(Exception):
    """Stands in for SIGKILL of the process: raised from a hook after some work is on disk."""


# ---- training runs on hand-written data ----------------------------------------------------------
TOPIC_ROWS = [
    ("the team won the game", "sports"), ("the team play the game today", "sports"),
    ("stock market fell today", "business"), ("the stock rose", "business"),
    ("john lives in paris", "world"), ("mary visited london", "world"),
    ("the dog sat on the mat", "world"), ("acme corp stock fell", "business"),
    ("the team won", "sports"), ("market rose today", "business"),
]
NER_SENTENCES = [
    [("john", "B-PER"), ("smith", "I-PER"), ("lives", "O"), ("in", "O"), ("paris", "B-LOC")],
    [("mary", "B-PER"), ("visited", "O"), ("london", "B-LOC"), (".", "O")],
    [("acme", "B-ORG"), ("corp", "I-ORG"), ("stock", "O"), ("fell", "O")],
    [("john", "B-PER"), ("works", "O"), ("at", "O"), ("google", "B-ORG")],
    [("the", "O"), ("cat", "O"), ("sat", "O"), ("in", "O"), ("new", "B-LOC"), ("york", "I-LOC")],
    [("mary", "B-PER"), ("smith", "I-PER"), ("won", "O")],
]


def write_data(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    topic = directory / "topic.csv"
    topic.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in TOPIC_ROWS))
    ner = directory / "ner.conll"
    ner.write_text("\n\n".join("\n".join(f"{w} {tag}" for w, tag in s) for s in NER_SENTENCES) + "\n")
    return {"topic": topic, "ner": ner}


def make_config(tmp_path: Path, backbone: Path, **sections) -> TrainConfig:
    files = write_data(tmp_path / "data")
    raw = {
        "model": {"backbone": str(backbone)},
        "tasks": [
            {"name": "topic", "type": "sentence_classification", "hidden_dim": 8, "dropout": 0.2,
             "data": {"train": {"path": str(files["topic"]), "format": "csv"},
                      "dev": {"path": str(files["topic"]), "format": "csv"}}},
            {"name": "ner", "type": "token_classification", "dropout": 0.2,
             "data": {"train": {"path": str(files["ner"]), "format": "conll"},
                      "dev": {"path": str(files["ner"]), "format": "conll"}}},
        ],
        "optimizer": {"lr": 1e-3, "head_lr": 1e-2, "batch_size": 4, "max_steps": 6, "warmup_ratio": 0.0},
        "evaluation": {"every_steps": 3},
        "run": {"output_dir": str(tmp_path / "run"), "seed": 7, "log_every_steps": 2},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return TrainConfig.model_validate(raw)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- a live HTTP server ---------------------------------------------------------------------------
@contextmanager
def live_server(app):
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)


def perturb(module: torch.nn.Module, seed: int = 1, scale: float = 0.05) -> None:
    """What training does to a module, in one step: every weight moves (e.g. a task branch)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)


def assert_only_tuned_part_learns(model, tuned: torch.nn.Module, sentences: list[str]) -> None:
    """One backward pass through the topic and NER heads' losses: gradients reach every parameter of ``tuned`` (a
    task branch or side network) and none of the backbone's, and the embedding never joins the graph."""
    batch = model.tokenizer.collate(model.tokenizer(sentences))
    labels = {"topic": torch.tensor([0, 1, 2, 0]), "ner": torch.zeros_like(batch["input_ids"])}
    out = model(batch, labels=labels)
    out["loss"].backward()
    assert not out["sentence_embedding"].requires_grad
    assert all(p.grad is None and not p.requires_grad for p in model.encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tuned.parameters())


# ---- code snippets in the docs, run as tests ----------------------------------------------------
def run_doc_snippet(doc: str, name: str, replace: dict[str, str]) -> dict:
    """Run the ```python block under ``<!-- snippet: NAME -->`` in docs/DOC (each ``replace`` key swapped for its
    value first, e.g. the docs' URL for a live server's) and return the names it defined."""
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / doc).read_text(encoding="utf-8")
    found = re.search(rf"<!-- snippet: {re.escape(name)} -->\n```python\n(.*?)```", text, flags=re.S)
    assert found, f"docs/{doc} lost its '{name}' snippet"
    code = found.group(1)
    for old, new in replace.items():
        assert old in code, f"the '{name}' snippet no longer contains {old!r}"
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, f"docs/{doc}:{name}", "exec"), namespace)
    return namespace


def export_test_model(backbone: Path, directory: Path, branch_at: int | None, ner_labels: list[str]) -> Path:
    """The model the export tests run on, saved: topic + NER heads; with ``branch_at``, a trained-looking task
    branch and an NER head that reads word shapes (a third graph input) and decodes through a CRF (its
    transitions travel beside the graph)."""
    from mtst import MultiTaskModel

    torch.manual_seed(0)
    model = MultiTaskModel.from_backbone(backbone, branch_at=branch_at)
    if model.branch is not None:
        perturb(model.branch)
    model.add_head("topic", "sentence_classification", ["world", "sports", "business"], hidden_dim=16)
    extras = {} if model.branch is None else {"word_shape": "on", "crf": True}
    model.add_head("ner", "token_classification", ner_labels, **extras)
    return model.save(directory / "model")
