"""Model inference as a Ray Data callable class: ``ds.map_batches(MtstPredictor, fn_constructor_args=(spec,
options), batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=N), num_cpus=T)``.

Ray builds one MtstPredictor per actor, so the model is loaded once per actor and reused for every batch; only
the ``ModelSpec`` (plain values, from mtst.inference.backends) travels to the actors, never a loaded model. A batch
comes back with its columns kept and one column per task plus ``embedding`` added (Arrow types fixed by the model, so
every block of a dataset has the same schema and Parquet can hold it). Nothing here imports Ray: the class is a
plain callable.

Rows numbered in a ``row`` column (``mtst.integrations.ray_sources``) are encoded ``chunk_size`` at a time, chunk
``row // chunk_size`` together, which is exactly what ``mtst encode --input F --output O.npy`` does, so the
floats match it bit for bit whatever blocks Ray forms. Without ``row``, each batch is encoded as it comes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from mtst.errors import MtstError
from mtst.inference.backends import ModelSpec
from mtst.inference.truncation import embedding_cuts
from mtst.model.predictor import Predictor
from mtst.model.tasks import task_type

ROW = "row"  # the global input row number, added by mtst's own Ray sources
EMBEDDING = "embedding"
TRUNCATED = "truncated"  # a sentence task or the embedding read the text cut at its token limit
ENTITY = pa.struct([("text", pa.string()), ("label", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
                    ("score", pa.float64())])


@dataclass(frozen=True)
class PredictOptions:
    """What each row gets, and how rows are batched.

    ``tasks``: head names to predict; None: every head of the model; (): none (embeddings only).
    ``chunk_size``: rows encoded together when the input has a ``row`` column (None: each batch as it comes).
    """

    embedding: bool = True
    tasks: tuple[str, ...] | None = ()
    text_column: str = "text"
    batch_size: int | None = None  # sentences per forward pass, inside a chunk (None: as encode / predict choose)
    chunk_size: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise MtstError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise MtstError(f"chunk_size must be at least 1, got {self.chunk_size}")
        if not self.embedding and self.tasks == ():
            raise MtstError("nothing to compute: ask for the embedding, some tasks, or both")


def output_fields(predictor: Predictor, options: PredictOptions) -> list[pa.Field]:
    """The columns a batch gets, in order: one per task, then the embedding (the order of ``mtst predict``), then
    ``truncated`` (predict rows' ``"truncated"``, absent is false; embeddings only: cut at the embedding limit)."""
    fields = []
    for task in predictor.check_tasks(options.tasks):
        head = predictor.config.heads[task]
        per_label = pa.struct([(label, pa.float64()) for label in head.labels])
        if task_type(head.type).token_level:
            kind = pa.list_(ENTITY)  # entities with character offsets
        elif task_type(head.type).multi_label:  # any number of labels, each with its own probability
            kind = pa.struct([("labels", pa.list_(pa.string())), ("scores", per_label)])
        else:
            kind = pa.struct([("label", pa.string()), ("score", pa.float64()), ("distribution", per_label)])
        fields.append(pa.field(task, kind))
    if options.embedding:
        fields.append(pa.field(EMBEDDING, pa.list_(pa.float32(), int(predictor.config.encoder.hidden_size))))
    if not fields:
        raise MtstError("nothing to compute: this model has no heads; ask for the embedding")
    return [*fields, pa.field(TRUNCATED, pa.bool_())]  # did a sentence task or the embedding read a cut text


class MtstPredictor:
    """A Ray Data ``map_batches`` class: load the model once per actor, add predictions to every batch.

    Args:
        spec: which model to load (plain values, so Ray can send them to any node).
        options: embedding and/or tasks, the text column, batch and chunk sizes.
        threads: CPU threads for this actor's model (match the ``num_cpus`` the actor reserves).
    """

    def __init__(self, spec: ModelSpec, options: PredictOptions = PredictOptions(), threads: int | None = None):
        if threads is not None:
            os.environ["RAYON_NUM_THREADS"] = str(threads)  # the fast tokenizer's pool, before its first use
        self.predictor = (spec if threads is None else replace(spec, threads=threads)).load()
        self.spec, self.options = spec, options
        self.tasks = self.predictor.check_tasks(options.tasks)
        self.fields = output_fields(self.predictor, options)

    def __call__(self, batch) -> pa.Table:
        """A batch (pyarrow Table, dict of numpy arrays or pandas DataFrame) -> a pyarrow Table with the columns
        of ``output_fields`` appended."""
        table = _as_table(batch)
        texts = _texts(table, self.options.text_column)
        clash = next((f.name for f in self.fields if f.name in table.column_names), None)
        if clash is not None:
            raise MtstError(f"the input already has a column '{clash}'; drop or rename it, it would be overwritten")
        parts = [self._run(texts[start:stop]) for start, stop in self._chunks(table)]
        for index, field in enumerate(self.fields):
            chunks = [part[index] for part in parts]
            table = table.append_column(field, pa.chunked_array(chunks, type=field.type))
        return table

    def _chunks(self, table: pa.Table) -> Iterator[tuple[int, int]]:
        """(start, stop) positions of the rows encoded together: runs of one chunk number, else the whole batch."""
        if self.options.chunk_size is None or ROW not in table.column_names or table.num_rows == 0:
            yield 0, table.num_rows
            return
        keys = table.column(ROW).to_numpy() // self.options.chunk_size
        cuts = [0, *(np.flatnonzero(np.diff(keys)) + 1).tolist(), table.num_rows]
        yield from zip(cuts[:-1], cuts[1:], strict=True)

    def _run(self, texts: list[str]) -> list[pa.Array]:
        """One encode or predict call over ``texts`` -> one array per output field."""
        size = self.options.batch_size
        if not self.tasks:
            vectors = np.asarray(self.predictor.encode(texts, batch_size=size, normalize=self.spec.normalize),
                                 dtype=np.float32)  # (N, H)
            return [_vectors(vectors, self.fields[-2].type),
                    pa.array(embedding_cuts(self.predictor, texts), type=pa.bool_())]
        rows = self.predictor.predict(texts, tasks=self.tasks, batch_size=size,
                                      include_embedding=self.options.embedding)
        arrays = [pa.array([row[task] for row in rows], type=field.type)
                  for task, field in zip(self.tasks, self.fields, strict=False)]
        if self.options.embedding:
            vectors = np.asarray([row[EMBEDDING] for row in rows], dtype=np.float32).reshape(len(rows), -1)
            arrays.append(_vectors(vectors, self.fields[-2].type))
        arrays.append(pa.array([bool(row.get(TRUNCATED)) for row in rows], type=pa.bool_()))
        return arrays


def _vectors(matrix: np.ndarray, kind: pa.DataType) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), type=pa.float32()), kind.list_size)


def _as_table(batch) -> pa.Table:
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, dict):
        return pa.table({name: pa.array(list(values)) if getattr(values, "ndim", 1) > 1 else values
                         for name, values in batch.items()})
    return pa.Table.from_pandas(batch, preserve_index=False)


def _texts(table: pa.Table, column: str) -> list[str]:
    if column not in table.column_names:
        raise MtstError(f"no column '{column}' in the data (columns: {', '.join(table.column_names)}); "
                        "name the text column (--column NAME)")
    values = table.column(column)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise MtstError(f"column '{column}' holds {values.type}, not text; name the text column (--column NAME)")
    if values.null_count:
        first = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        where = f"row {table.column(ROW)[first].as_py()}" if ROW in table.column_names else "a row"
        raise MtstError(f"{where} has no text (null in column '{column}'); fill or drop it")
    return values.to_pylist()
