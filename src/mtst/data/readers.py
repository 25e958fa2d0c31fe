"""Labelled examples from files: one reader per format (csv | tsv | jsonl | conll | spans | hf_disk).

Data flow: DataSource -> rows of the file (rows.py) -> Examples (texts, labels, origins)
-> EncodedTask (task_encoding.py: tokenized once, label ids aligned to sub-tokens) -> padded (B, T) batches.

Every problem a user can fix in a data file raises MtstError naming ``path:line`` and the problem,
because "KeyError: 3" after ten minutes of tokenising is no help.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mtst.data.rows import jsonl_rows, read_delimited, read_text
from mtst.data.sources import DataSource
from mtst.data.spans import iob1_to_iob2, looks_like_iob1, span_tags
from mtst.errors import MtstError

DOCSTART = "-DOCSTART-"  # CoNLL document separator, not a sentence


@dataclass(frozen=True)
class Examples:
    """Texts and label names of one split; ``origins[i]`` is ``"path:line"`` of example i."""

    texts: list  # list[str] (sentence tasks) or list[list[str]] (words, token tasks)
    labels: list  # list[str] or list[list[str]] (one BIO tag per word)
    origins: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def take(examples: Examples, indices: Sequence[int]) -> Examples:
    return Examples(
        texts=[examples.texts[i] for i in indices],
        labels=[examples.labels[i] for i in indices],
        origins=[examples.origins[i] for i in indices],
    )


# ---- labels -------------------------------------------------------------------------------
def _label_name(raw: object, origin: str, source: DataSource, names: list[str] | None = None) -> str:
    """A raw label (str, int, ...) -> its name: through label_map if given, else ClassLabel names."""
    if raw is None or isinstance(raw, list | dict):
        raise MtstError(f"{origin}: label must be one value, got {raw!r}")
    key = str(int(raw)) if isinstance(raw, float) and raw.is_integer() else str(raw).strip()  # 1.0 -> "1"
    if source.label_map is not None:
        if key not in source.label_map:
            raise MtstError(f"{origin}: label '{key}' has no entry in label_map (keys: {sorted(source.label_map)})")
        key = source.label_map[key].strip()
    elif names is not None and isinstance(raw, int) and not isinstance(raw, bool):
        if not 0 <= raw < len(names):
            raise MtstError(f"{origin}: class index {raw} is outside the dataset's ClassLabel names {names}")
        key = names[raw]
    if not key:
        raise MtstError(f"{origin}: empty label; every example needs one")
    return key


def _label_names(raw: object, origin: str, source: DataSource, names: list[str] | None = None) -> list[str]:
    """A multi-label row's label names, sorted: a list (jsonl, datasets) or text joined by ``label_separator``
    (csv, tsv); no labels at all is allowed (an empty list)."""
    if isinstance(raw, str):
        raw = [part for part in raw.split(source.label_separator) if part.strip()]
    if not isinstance(raw, list):
        raise MtstError(f"{origin}: a multi-label row needs a list of labels (or text joined by "
                        f"'{source.label_separator}'), got {raw!r:.60}")
    return sorted({_label_name(item, origin, source, names) for item in raw})


def _read_jsonl(source: DataSource) -> list[tuple[object, object, str]]:
    rows, origins = jsonl_rows(source, [source.text_column, source.label_column])
    return [(text, label, origin) for (text, label), origin in zip(rows, origins, strict=True)]


def _read_conll(source: DataSource) -> list[tuple[object, object, str]]:
    """Word in column 0, tag in ``tag_column``; blank lines end sentences; -DOCSTART- lines are skipped."""
    path = source.path
    records = []
    words: list[str] = []
    tags: list[str] = []
    start = width_line = width = 0

    def flush() -> None:
        if words:
            records.append((list(words), list(tags), f"{path}:{start}"))
            words.clear()
            tags.clear()

    for number, line in enumerate(read_text(path).split("\n"), start=1):
        parts = line.split()
        if not parts or parts[0] == DOCSTART:
            flush()
            continue
        if not width:
            width, width_line = len(parts), number
            if width < 2:
                raise MtstError(f"{path}:{number}: expected 'word ... tag' columns separated by whitespace, got 1")
            if not -width < source.tag_column < width or source.tag_column in (0, -width):
                raise MtstError(f"{path}:{number}: tag_column {source.tag_column} is not a tag column "
                                f"of a {width}-column line")
        elif len(parts) != width:
            raise MtstError(f"{path}:{number}: expected {width} columns (as on line {width_line}), got {len(parts)}")
        if not words:
            start = number
        words.append(parts[0])
        tags.append(parts[source.tag_column])
    flush()
    return records


def _read_spans(source: DataSource) -> list[tuple[object, object, str]]:
    """JSON lines of text + character spans (Label Studio, doccano, spaCy) -> (words, BIO tags, origin)."""
    key = source.label_column if "label_column" in source.model_fields_set else "spans"
    rows, origins = jsonl_rows(source, [source.text_column, key])
    records = []
    for (text, spans), origin in zip(rows, origins, strict=True):
        words, tags = span_tags(text, spans, origin, lambda raw, where=origin: _label_name(raw, where, source))
        records.append((words, tags, origin))
    return records


def _class_names(feature: object) -> list[str] | None:
    """ClassLabel names of a datasets feature, or of the items of a sequence feature."""
    inner = getattr(feature, "feature", feature)
    names = getattr(inner, "names", None)
    return list(names) if isinstance(names, list) else None


def _read_hf_disk(source: DataSource) -> tuple[list[tuple[object, object, str]], list[str] | None]:
    """A ``Dataset.save_to_disk`` directory. For a DatasetDict, point ``path`` at one split's
    folder (``save_to_disk`` writes each split as its own Dataset directory)."""
    path = source.path
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError as exc:
        raise MtstError("format hf_disk needs the 'datasets' package: pip install datasets") from exc
    if not path.is_dir():
        raise MtstError(f"{path}: directory not found; hf_disk reads a datasets save_to_disk directory")
    try:
        dataset = load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise MtstError(f"{path}: not a datasets save_to_disk directory ({str(exc).splitlines()[0]})") from exc
    if isinstance(dataset, DatasetDict):
        splits = list(dataset)
        raise MtstError(f"{path} holds a DatasetDict with splits {splits}; point path at one split's directory, "
                        f"e.g. {path / splits[0]}")
    for column in (source.text_column, source.label_column):
        if column not in dataset.column_names:
            raise MtstError(f"{path}: no column {column!r}; the dataset's columns are {dataset.column_names}")
    if len(dataset) == 0:
        raise MtstError(f"{path}: the dataset is empty; it needs at least one example")
    texts, labels = dataset[source.text_column], dataset[source.label_column]
    records = [(text, label, f"{path}:row {row}") for row, (text, label) in enumerate(zip(texts, labels, strict=True))]
    return records, _class_names(dataset.features[source.label_column])


def _check_bio(tag: str, origin: str) -> str:
    prefix, dash, kind = tag.partition("-")
    if tag != "O" and not (prefix in ("B", "I") and dash and kind):
        raise MtstError(f"{origin}: tag '{tag}' is not BIO; token tasks need O, B-TYPE and I-TYPE tags")
    return tag


def _to_examples(records: list[tuple[object, object, str]], source: DataSource, token: bool,
                 names: list[str] | None = None) -> Examples:
    """Validate raw (text, label, origin) records and turn labels into names; token tags of an IOB1 file
    (``scheme: iob1``, or ``auto`` and the file looks like IOB1) become IOB2."""
    if not records:
        raise MtstError(f"{source.path}: no examples in the file; it needs at least one")
    texts, labels, origins = [], [], []
    for text, label, origin in records:
        if token:
            if not isinstance(text, list) or not text or not all(isinstance(word, str) for word in text):
                raise MtstError(f"{origin}: a token task needs a non-empty list of words, got {text!r:.60}")
            if not isinstance(label, list) or len(label) != len(text):
                raise MtstError(f"{origin}: needs one tag per word ({len(text)} words), got {label!r:.60}")
            label = [_check_bio(_label_name(tag, origin, source, names), origin) for tag in label]
        else:
            if not isinstance(text, str) or not text.strip():
                raise MtstError(f"{origin}: text must be a non-empty string, got {text!r:.60}")
            name_of = _label_names if source.label_separator is not None else _label_name
            label = name_of(label, origin, source, names)
        texts.append(text)
        labels.append(label)
        origins.append(origin)
    if token and (source.scheme == "iob1" or (source.scheme == "auto" and looks_like_iob1(labels))):
        labels = [iob1_to_iob2(tags) for tags in labels]
    return Examples(texts, labels, origins)


def read_all(source: DataSource, token: bool, multi_label: bool = False) -> Examples:
    """One file -> Examples; ``multi_label``: each label is a list of names (``label_separator`` "|" unless set)."""
    if multi_label and source.label_separator is None:
        source = source.model_copy(update={"label_separator": "|"})
    elif not multi_label and source.label_separator is not None:
        raise MtstError(f"{source.path}: label_separator is for multi-label tasks; remove it from this task's data")
    if source.text_pair_column is not None:
        raise MtstError(f"{source.path}: text_pair_column is for pair tasks (scored_pairs, positive_pairs) and "
                        "evaluation.sts; remove it from this task's data")
    if source.format in ("csv", "tsv"):
        if token:
            raise MtstError(f"{source.path}: token tasks read conll, jsonl or hf_disk data (or spans), "
                            f"not {source.format}")
        rows, origins = read_delimited(source, [source.text_column, source.label_column])
        records = [(text, label, origin) for (text, label), origin in zip(rows, origins, strict=True)]
        return _to_examples(records, source, token)
    if source.format == "conll":
        if not token:
            raise MtstError(f"{source.path}: conll data holds word tags; use it for a token task")
        return _to_examples(_read_conll(source), source, token)
    if source.format == "jsonl":
        return _to_examples(_read_jsonl(source), source, token)
    if source.format == "spans":
        if not token:
            raise MtstError(f"{source.path}: spans data holds entity offsets; use it for a token task")
        return _to_examples(_read_spans(source), source.model_copy(update={"label_map": None}), token)  # mapped
    records, names = _read_hf_disk(source)
    return _to_examples(records, source, token, names)


def read_examples(source: DataSource, token: bool, multi_label: bool = False) -> Examples:
    """One file -> Examples (the first ``max_examples`` when set)."""
    examples = read_all(source, token, multi_label)
    return take(examples, range(min(len(examples), source.max_examples or len(examples))))
