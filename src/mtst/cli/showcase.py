"""The ``mtst demo`` showcase: a few sentences, one forward pass, embeddings + every task's predictions.

Its output is identical on every run: the heads are seeded (or the shipped trained model is used),
the sentences are fixed, and every float is printed with a fixed number of decimals. Plain text
stays readable when stdout is not a terminal: entities are tagged inline, not only coloured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mtst.model.multitask import MultiTaskModel
from mtst.model.storage import DEFAULT_MODEL_DIR, read_config

DEMO_SEED = 0
DEMO_SENTENCES = [
    "A man is playing a guitar.",
    "Someone is playing an instrument.",
    "NASA launched a new telescope to study distant galaxies.",
    "Angela Merkel met Emmanuel Macron in Paris to discuss Airbus.",
    "Shares of Apple fell sharply after disappointing quarterly results.",
    "What a wonderful match: Liverpool won the final in Madrid!",
]
SIMILAR_PAIR = (0, 1)  # indices into DEMO_SENTENCES: same meaning, different words
UNRELATED_PAIR = (0, 2)  # nothing in common

TOPIC_LABELS = ["World", "Sports", "Business", "Sci/Tech"]  # AG News classes
SENTIMENT_LABELS = ["negative", "positive"]  # SST-2 classes
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]  # CoNLL-2003 BIO

ENTITY_STYLES = {"PER": "bold magenta", "ORG": "bold cyan", "LOC": "bold green", "MISC": "bold yellow"}
FIRST_VALUES = 5  # embedding values shown per sentence


def trained_default_available(directory: Path = DEFAULT_MODEL_DIR) -> bool:
    """True when a trained default model is shipped inside the package (``pretrained/default``)."""
    if not (directory / "mtst_config.json").exists():
        return False
    return read_config(directory).trained


def seeded_model(backbone: str | Path | None = None) -> MultiTaskModel:
    """``backbone`` (default all-MiniLM-L6-v2) with topic, sentiment and NER heads seeded by DEMO_SEED.

    The heads are untrained: their predictions are random but the same on every run. The global
    torch RNG is forked so building the demo does not disturb the caller's random state.
    """
    model = MultiTaskModel.from_backbone(backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(DEMO_SEED)
        model.add_head("topic", "sentence_classification", TOPIC_LABELS)
        model.add_head("sentiment", "sentence_classification", SENTIMENT_LABELS)
        model.add_head("ner", "token_classification", NER_LABELS)
    return model.eval()


def demo_model() -> MultiTaskModel:
    """The shipped trained default model when installed, else the seeded untrained ``seeded_model()``."""
    if trained_default_available():
        return MultiTaskModel.load(None)
    return seeded_model()


def untrained_warning(seed: int = DEMO_SEED) -> str:
    return (
        f"Note: these task heads are UNTRAINED (random weights, seed {seed}); their predictions are "
        "placeholders. The embeddings and similarities come from the pretrained encoder and are meaningful."
    )


# ---- rendering ----------------------------------------------------------------------------------
def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def cosine_matrix(embeddings: np.ndarray) -> np.ndarray:
    """(N, H) -> (N, N) cosine similarities; zero vectors get similarity 0 instead of NaN."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)  # (N, 1)
    unit = embeddings / np.clip(norms, 1e-12, None)
    return unit @ unit.T


def highlight_entities(text: str, entities: list[dict]) -> Text:
    """The sentence with every entity styled and tagged inline: ``[Paris]LOC``."""
    out = Text()
    cursor = 0
    for entity in sorted(entities, key=lambda e: e["start"]):
        start, end = entity["start"], entity["end"]
        if start < cursor:  # overlapping spans cannot come out of BIO decoding; skip defensively
            continue
        out.append(text[cursor:start])
        style = ENTITY_STYLES.get(entity["label"], "bold")
        out.append(f"[{text[start:end]}]", style=style)
        out.append(entity["label"], style=f"{style} dim")
        cursor = end
    out.append(text[cursor:])
    return out


def _similarity_table(sims: np.ndarray, sentences: list[str]) -> Table:
    table = Table(title="Cosine similarity", show_lines=False)
    table.add_column("sentence", no_wrap=True)
    for col in range(len(sentences)):
        table.add_column(str(col + 1), justify="right")
    pairs = {SIMILAR_PAIR, SIMILAR_PAIR[::-1]}
    for row, sentence in enumerate(sentences):
        cells = []
        for col in range(len(sentences)):
            value = f"{sims[row, col]:.2f}"
            cells.append(Text(value, style="bold green") if (row, col) in pairs else value)
        table.add_row(Text(f"{row + 1} {_short(sentence, 22)}"), *cells)
    return table


def _prediction_lines(model: MultiTaskModel, row: dict) -> list[Text]:
    lines = []
    width = max((len(task) for task in model.tasks), default=0)
    for task in model.tasks:
        label = Text("   ")
        label.append(f"{task:<{width}}  ", style="dim")  # only the name is dim, not the prediction
        value = row[task]
        if isinstance(value, list):  # token task: entities with char spans
            label.append_text(highlight_entities(row["text"], value))
        else:
            label.append(f"{value['label']} ({value['score']:.2f})")
        lines.append(label)
    return lines


def render_demo(console: Console, model: MultiTaskModel, sentences: list[str] | None = None) -> None:
    """Print the whole showcase from ONE ``predict`` call (embedding + all heads per forward pass)."""
    sentences = list(DEMO_SENTENCES if sentences is None else sentences)
    cfg = model.config
    console.print(Text("mtst demo: one encoder pass -> sentence embedding + every task head", style="bold"))
    backbone = "all-MiniLM-L6-v2 (default)" if cfg.encoder.backbone == "default" else cfg.encoder.backbone
    console.print(f"encoder: {backbone}, pooling {cfg.encoder.pooling}, "
                  f"{'L2-normalised' if cfg.encoder.normalize else 'not normalised'}", markup=False, highlight=False)
    tasks = ", ".join(f"{t} ({len(cfg.heads[t].labels)} labels)" for t in model.tasks) or "none"
    console.print(f"tasks:   {tasks}", markup=False, highlight=False)
    if cfg.trained:
        console.print("heads:   trained (shipped default model)")
    else:
        console.print(Text(untrained_warning(), style="yellow"))

    rows = model.predict(sentences, include_embedding=True)
    embeddings = np.asarray([row["embedding"] for row in rows], dtype=np.float32)  # (N, H)

    console.print()
    console.print(Text(f"Sentence embeddings: {len(sentences)} x {embeddings.shape[1]} "
                       f"(dimension {embeddings.shape[1]})", style="bold"))
    for index, vector in enumerate(embeddings):
        values = " ".join(f"{v:+.4f}" for v in vector[:FIRST_VALUES])
        line = f"{index + 1}. {_short(sentences[index], 28):<28}  [{values} ...]"
        console.print(line, markup=False, highlight=False)

    sims = cosine_matrix(embeddings)
    console.print()
    console.print(_similarity_table(sims, sentences))
    (a, b), (c, d) = SIMILAR_PAIR, UNRELATED_PAIR
    if max(a, b, c, d) < len(sentences):
        console.print(f"similar pair ({a + 1}, {b + 1}): {sims[a, b]:.4f}   "
                      f"unrelated pair ({c + 1}, {d + 1}): {sims[c, d]:.4f}", highlight=False)

    console.print()
    console.print(Text("Predictions (same forward pass)", style="bold"))
    for index, row in enumerate(rows):
        console.print(f"{index + 1}. {row['text']}", markup=False, highlight=False)
        for line in _prediction_lines(model, row):
            console.print(line, highlight=False)
