"""Evaluation you can read: per task the totals, per-class (sentence tasks) or per-entity-type (token tasks)
precision / recall / F1 and support, a confusion matrix for sentence tasks, and every row's prediction beside its
gold label. Rendering and files: report_files.py.

Per-class numbers come from scikit-learn's ``classification_report`` (sentence tasks, over the model's labels and
any gold label it lacks) and seqeval's (token tasks, ``mode="strict", scheme=IOB2``, the same rule as the
totals), in percent like every mtst metric; support stays a count. The predictions are those of the totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mtst.data.readers import Examples, read_examples
from mtst.data.sources import DataSource
from mtst.errors import MtstError
from mtst.model.multitask import MultiTaskModel
from mtst.model.tasks import task_type
from mtst.training.calibration import answers_ece
from mtst.training.evaluation import MEAN_KEY, _predict_labels, main_metric


@dataclass
class TaskReport:
    """One task's evaluation on one data set."""

    task: str
    metrics: dict[str, float]  # task-prefixed totals, as evaluate_task gives them
    per_class: dict[str, dict[str, float]]  # label (or entity type, or "macro avg" ...) -> precision/recall/f1/support
    rows: list[dict]  # one per example: text or words, gold, predicted (+ score for sentence tasks)
    labels: list[str] = field(default_factory=list)  # confusion matrix order (sentence tasks; else empty)
    confusion: list[list[int]] = field(default_factory=list)  # [gold][predicted] counts


def _percent(report: dict) -> dict[str, dict[str, float]]:
    """A classification_report dict -> per row {precision, recall, f1 in percent, support}; the lone accuracy
    entry (a float, already in the totals) is dropped."""
    return {name: {"precision": 100 * float(row["precision"]), "recall": 100 * float(row["recall"]),
                   "f1": 100 * float(row["f1-score"]), "support": int(row["support"])}
            for name, row in report.items() if isinstance(row, dict)}


def _sentence_report(model: MultiTaskModel, task: str, examples: Examples, batch_size: int) -> TaskReport:
    from sklearn.metrics import classification_report, confusion_matrix

    answers = [row[task] for row in model.predict(examples.texts, tasks=[task], batch_size=batch_size,
                                                       show_progress_bar=False)]
    predicted = [max(answer["distribution"], key=answer["distribution"].get) for answer in answers]  # arg-max
    gold = list(examples.labels)
    labels = list(model.heads[task].labels)
    labels += sorted(set(gold) - set(labels))  # gold labels the model lacks still get a row
    per_class = _percent(classification_report(gold, predicted, labels=labels, output_dict=True, zero_division=0))
    rows = [{"origin": origin, "text": text, "gold": want, "predicted": answer["label"], "score": answer["score"]}
            for origin, text, want, answer in zip(examples.origins, examples.texts, gold, answers, strict=True)]
    matrix = confusion_matrix(gold, predicted, labels=labels).tolist()
    metrics = task_type(model.config.heads[task].type).metrics(task, gold, predicted)
    metrics[f"{task}/ece"] = answers_ece(answers, gold, list(model.heads[task].labels))  # percent, 15 bins
    return TaskReport(task, metrics, per_class, rows, labels, matrix)


def _token_report(model: MultiTaskModel, task: str, examples: Examples, batch_size: int) -> TaskReport:
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    predicted = _predict_labels(model, task, examples, batch_size)
    gold = list(examples.labels)
    report = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    rows = [{"origin": origin, "words": words, "gold": want, "predicted": got}
            for origin, words, want, got in zip(examples.origins, examples.texts, gold, predicted, strict=True)]
    metrics = task_type(model.config.heads[task].type).metrics(task, gold, predicted)
    return TaskReport(task, metrics, _percent(report), rows)


def _multi_label_report(model: MultiTaskModel, task: str, examples: Examples, batch_size: int) -> TaskReport:
    """Per label precision / recall / F1 over the multi-hot matrices (no confusion matrix: labels co-occur)."""
    from sklearn.metrics import classification_report
    from sklearn.preprocessing import MultiLabelBinarizer

    predicted = _predict_labels(model, task, examples, batch_size)
    gold = [list(labels) for labels in examples.labels]
    binarizer = MultiLabelBinarizer(classes=list(model.heads[task].labels))
    report = classification_report(binarizer.fit_transform(gold), binarizer.transform(predicted), output_dict=True,
                                   target_names=binarizer.classes_, zero_division=0)
    rows = [{"origin": origin, "text": text, "gold": want, "predicted": got}
            for origin, text, want, got in zip(examples.origins, examples.texts, gold, predicted, strict=True)]
    return TaskReport(task, task_type(model.config.heads[task].type).metrics(task, gold, predicted), _percent(report),
                      rows)


def report_task(model: MultiTaskModel, task: str, examples: Examples, batch_size: int = 64) -> TaskReport:
    """Totals, per-class table, confusion matrix (sentence tasks) and predictions of one task on ``examples``."""
    if task not in model.config.heads:
        raise MtstError(f"task '{task}' is not in the model; its tasks are: {', '.join(model.tasks) or 'none'}")
    kind = task_type(model.config.heads[task].type)
    if not kind.predicts:
        raise MtstError(f"task '{task}' is a {kind.name} task: it has no per-class report; score it with --config "
                        "(pairs need text_pair_column)")
    if len(examples) == 0:
        raise MtstError(f"task '{task}': no examples to evaluate")
    if batch_size < 1:
        raise MtstError(f"batch_size must be at least 1, got {batch_size}")
    build = _token_report if kind.token_level else _multi_label_report if kind.multi_label else _sentence_report
    return build(model, task, examples, batch_size)


def read_task_file(model: MultiTaskModel, task: str, source: DataSource) -> Examples:
    """``source`` read the way the model's task needs it (words and tags for token tasks)."""
    if task not in model.config.heads:
        raise MtstError(f"task '{task}' is not in the model; its tasks are: {', '.join(model.tasks) or 'none'}")
    try:
        kind = task_type(model.config.heads[task].type)
        return read_examples(source, kind.token_level, kind.multi_label)
    except MtstError as exc:
        raise MtstError(f"task '{task}': {exc}") from exc


def evaluate_files(model: MultiTaskModel, sources: dict[str, DataSource], batch_size: int = 64
                   ) -> tuple[dict[str, float], list[TaskReport]]:
    """No training config needed: each task's file, read as the model's head wants it, scored. Returns the flat
    metrics (with ``mean/main`` over the tasks' main metrics) and one report per task."""
    if not sources:
        raise MtstError("no data to evaluate; give at least one task's file")
    data = {task: read_task_file(model, task, source) for task, source in sources.items()}  # all read before scoring
    reports = [report_task(model, task, examples, batch_size) for task, examples in data.items()]
    metrics: dict[str, float] = {}
    for report in reports:
        metrics.update(report.metrics)
    mains = [metrics[main_metric(report.task, model.config.heads[report.task].type)] for report in reports]
    metrics[MEAN_KEY] = sum(mains) / len(mains)
    return metrics, reports
