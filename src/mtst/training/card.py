"""A model card (README.md) for each saved model of a run (final/ and best/), in the Hugging Face layout:
YAML front matter (language, license, library_name, tags, datasets), then tasks and labels, the data files and
their sizes, metrics per split, the training curve (training.png copied beside the card), the command and config
that reproduce the run, and limitations (language, truncation length).
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import yaml

from mtst.data.readers import Examples
from mtst.files import write_text
from mtst.model.multitask import MultiTaskModel
from mtst.model.tasks import task_type
from mtst.training.config import TrainConfig
from mtst.training.plots import read_metrics
from mtst.training.run_files import TrainResult

ENGLISH_BACKBONES = ("default",)  # all-MiniLM-L6-v2: trained on English text only


def _files(splits: dict[str, Examples]) -> dict[str, tuple[str, int]]:
    """split -> (file the examples came from, how many)."""
    return {name: (ex.origins[0].rsplit(":", 1)[0] if ex.origins else "?", len(ex)) for name, ex in splits.items()}


def front_matter(model: MultiTaskModel, splits: dict[str, dict[str, Examples]]) -> dict:
    language = "en" if model.config.encoder.backbone in ENGLISH_BACKBONES else None
    tags = ["mtst", "multi-task", "sentence-embeddings"]
    tags += sorted({"token-classification" if task_type(h.type).token_level else "text-classification"
                    for h in model.config.heads.values() if task_type(h.type).predicts})
    datasets = sorted({path for task in splits.values() for path, _ in _files(task).values()})
    return {"language": language, "license": "other", "library_name": "mtst", "tags": tags, "datasets": datasets}


def test_metrics(model: MultiTaskModel, config: TrainConfig, splits: dict[str, dict[str, Examples]]
                 ) -> dict[str, float]:
    """The final weights scored on every task's test split (none: {}); evaluation.sts is a dev file, left out."""
    if not any("test" in parts for parts in splits.values()):
        return {}
    from mtst.training.evaluation import evaluate_all

    device = next(model.parameters()).device
    model.to("cpu")  # evaluation and predict run on CPU tensors
    try:
        return evaluate_all(model, config.model_copy(update={"evaluation": config.evaluation.model_copy(
            update={"sts": None})}), split="test", splits=splits)
    finally:
        model.to(device)


def _metrics_table(best: dict[str, float], last: dict[str, float], test: dict[str, float]) -> list[str]:
    if not best and not last and not test:
        return ["No dev or test data: nothing was evaluated (`mtst evaluate` scores a test file)."]
    lines = ["| metric | dev, best evaluation (best/) | dev, last evaluation (final/) | test (final/) |",
             "|---|---:|---:|---:|"]
    for key in sorted(set(best) | set(last) | set(test)):
        cells = [f"{m[key]:.2f}" if key in m else "" for m in (best, last, test)]
        lines.append(f"| {key} | {' | '.join(cells)} |")
    return lines


def model_card(model: MultiTaskModel, splits: dict[str, dict[str, Examples]], result: TrainResult,
               metrics: dict[str, float], config_text: str, command: str, which: str) -> str:
    """The README.md text of ``which`` ("final" or "best") of a finished run."""
    evals = [r["eval"] for r in read_metrics(Path(result.output_dir) / "metrics.jsonl") if "eval" in r]
    header = front_matter(model, splits)
    language = ("English (the backbone, all-MiniLM-L6-v2, was trained on English text)" if header["language"]
                else "that of the backbone and of the training data")
    lines = ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "",
             f"# mtst model: {', '.join(model.config.heads)}", "",
             f"The {which} weights of the run in `{result.output_dir}` ({result.steps} of {result.total_steps} "
             f"optimizer steps, {result.wall_seconds:.0f} s). Load it with "
             f"`MultiTaskModel.load(\"{result.output_dir}/{which}\")` or "
             f"`mtst predict --model {result.output_dir}/{which}`.",
             "", "## Tasks", "",
             "| task | type | labels | data (examples) |", "|---|---|---|---|"]
    for name, head in model.config.heads.items():
        data = ", ".join(f"{split}: `{path}` ({n})" for split, (path, n) in _files(splits.get(name, {})).items())
        labels = ", ".join(head.labels) if head.labels else "(scores)"
        lines.append(f"| {name} | {head.type} | {labels} | {data or 'from an earlier run'} |")
    lines += ["", f"## Metrics (selection: {result.metric})", "",
              *_metrics_table(result.best_metrics, evals[-1] if evals else {}, metrics), "",
              "## Training curve", "", "![training curve](training.png)", "",
              "## Reproduce", "", "```bash", command, "```", "", "with this config (the run's config.yaml):", "",
              "```yaml", config_text.strip(), "```", "",
              "## Limitations", "",
              f"- Language: {language}.",
              f"- Inputs are truncated to {model.config.encoder.max_seq_length} tokens (sub-words): the rest of a "
              "longer text is not read, and its words get no tag.",
              "- Dev scores chose the weights (best/) and so flatter them; test scores are on data training never "
              "saw, from the same source as the training data.", ""]
    return "\n".join(lines)


def write_model_cards(run_dir: Path, model: MultiTaskModel, config: TrainConfig,
                      splits: dict[str, dict[str, Examples]], result: TrainResult, command: str | None = None) -> None:
    """README.md (and training.png) into every saved model directory of ``run_dir``; ``model``: the final weights
    (scored on the test splits here)."""
    metrics = test_metrics(model, config, splits)
    command = command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    config_file = run_dir / "config.yaml"
    config_text = config_file.read_text(encoding="utf-8") if config_file.exists() else ""
    for which in ("final", "best"):
        directory = run_dir / which
        if not directory.is_dir():
            continue
        if (run_dir / "training.png").exists():
            shutil.copyfile(run_dir / "training.png", directory / "training.png")
        write_text(directory / "README.md", model_card(model, splits, result, metrics, config_text, command, which))
