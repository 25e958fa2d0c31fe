"""Output sinks of Ray jobs, fed blocks by hand: input order whatever order blocks arrive in, a duplicate or a
missing row fails the run and leaves nothing behind, output names are checked up front. No Ray cluster needed."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtst import MtstError
from mtst.integrations.ray_data import EMBEDDING, ROW, TRUNCATED, PredictOptions
from mtst.integrations.ray_sinks import FileSink, PartsSink, output_kind

SCHEMA = pa.schema([("text", pa.string()), (EMBEDDING, pa.list_(pa.float32(), 2))])


def block(first: int, count: int) -> pa.Table:
    rows = np.arange(first, first + count)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.repeat(rows, 2).astype(np.float32)), 2)
    return pa.table({"text": [f"t{r}" for r in rows], ROW: rows, EMBEDDING: vectors})


@pytest.mark.parametrize("kind", ["npy", "jsonl", "parquet"])
def test_blocks_in_any_order_give_rows_in_input_order(tmp_path, kind):
    output = tmp_path / f"out.{kind}"
    sink = FileSink(kind, output, 9, SCHEMA)
    for first, count in [(6, 3), (0, 2), (4, 2), (2, 2)]:
        sink.add(block(first, count))
    sink.finish()
    expected = np.repeat(np.arange(9), 2).reshape(9, 2).astype(np.float32)
    if kind == "npy":
        assert np.array_equal(np.load(output), expected)
    elif kind == "jsonl":
        rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
        assert [r["text"] for r in rows] == [f"t{i}" for i in range(9)] and list(rows[0]) == ["text", EMBEDDING]
    else:
        table = pq.read_table(output)
        assert table.column_names == ["text", EMBEDDING]
        assert np.array_equal(np.array(table.column(EMBEDDING).to_pylist()), expected)
    sidecar = [f"{output.name}.truncated.json"] if kind == "npy" else []  # .npy rows cannot say they were cut
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([output.name, *sidecar])


@pytest.mark.parametrize("kind", ["npy", "jsonl", "parquet"])
def test_no_rows_give_an_empty_output(tmp_path, kind):
    output = tmp_path / f"out.{kind}"
    sink = FileSink(kind, output, 0, SCHEMA)
    sink.finish()
    sidecar = [f"{output.name}.truncated.json"] if kind == "npy" else []
    assert output.exists() and sorted(p.name for p in tmp_path.iterdir()) == sorted([output.name, *sidecar])


@pytest.mark.parametrize(("blocks", "fragment"), [([(0, 3), (2, 2)], "row 2 came back twice"),
                                                  ([(0, 3)], "1 rows never came back \\(first: row 3\\)")])
def test_duplicates_and_gaps_fail_and_leave_nothing(tmp_path, blocks, fragment):
    sink = FileSink("jsonl", tmp_path / "out.jsonl", 4, SCHEMA)
    with pytest.raises(MtstError, match=fragment):
        for first, count in blocks:
            sink.add(block(first, count))
        sink.finish()
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_parts_are_swapped_in_only_when_complete(tmp_path):
    output = tmp_path / "parts"
    sink = PartsSink(output, 4)
    (sink.staging / "part-000000000000.parquet").write_bytes(b"x")
    (sink.staging / ".part-000000000002.parquet.123.tmp").write_bytes(b"killed mid-write")
    sink.add(block(0, 4).select([ROW]))
    sink.finish()
    assert [p.name for p in tmp_path.iterdir()] == ["parts"]
    assert [p.name for p in output.iterdir()] == ["part-000000000000.parquet"]


@pytest.mark.parametrize(("name", "options", "fragment"), [
    ("out.txt", PredictOptions(), "cannot tell the output format"),
    ("out.npy", PredictOptions(tasks=None), "holds embeddings only"),
    ("missing/out.npy", PredictOptions(), "output folder not found"),
])
def test_bad_output_names_are_one_line_errors(tmp_path, name, options, fragment):
    with pytest.raises(MtstError, match=fragment):
        output_kind(tmp_path / name, options)


def test_output_kinds(tmp_path):
    (tmp_path / "existing").mkdir()
    kinds = {name: output_kind(tmp_path / name, PredictOptions()) for name in
             ("a.npy", "a.JSONL", "a.ndjson", "a.parquet", "new_folder", "existing")}
    assert kinds == {"a.npy": "npy", "a.JSONL": "jsonl", "a.ndjson": "jsonl", "a.parquet": "parquet",
                     "new_folder": "parts", "existing": "parts"}


def test_npy_gets_the_sidecar_mtst_encode_writes_listing_its_cut_rows(tmp_path):
    from mtst.inference.truncation import write_sidecar

    output = tmp_path / "out.npy"
    (tmp_path / "out.npy.truncated.json").write_text('{"stale": true}')  # an earlier run's: replaced
    sink = FileSink("npy", output, 6, SCHEMA, limit=48)
    for first, cut in [(3, [True, False, True]), (0, [False, True, False])]:  # blocks out of order
        sink.add(block(first, 3).append_column(TRUNCATED, pa.array(cut, type=pa.bool_())))
    sink.finish()
    sidecar = json.loads((tmp_path / "out.npy.truncated.json").read_text())
    assert sidecar == {"rows": 6, "max_seq_length": 48, "truncated": [1, 3, 5]}
    assert sidecar == json.loads(write_sidecar(tmp_path / "bulk.npy", [5, 1, 3], 6, 48).read_text())


def test_a_failed_npy_run_writes_no_sidecar(tmp_path):
    sink = FileSink("npy", tmp_path / "out.npy", 4, SCHEMA, limit=48)
    sink.add(block(0, 3).append_column(TRUNCATED, pa.array([True, False, False], type=pa.bool_())))
    with pytest.raises(MtstError, match="never came back"):
        sink.finish()
    sink.abort()
    assert list(tmp_path.iterdir()) == []
