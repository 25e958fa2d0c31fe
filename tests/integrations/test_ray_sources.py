"""The chunked, numbered Ray inputs, planned and read in this process: lines exactly as ``mtst encode`` reads them,
Parquet rows across files and row groups, one-line errors for unreadable inputs. No Ray cluster needed."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtst import MtstError
from mtst.inference.bulk import _lines
from mtst.integrations.ray_data import ROW

ray_sources = pytest.importorskip("mtst.integrations.ray_sources", exc_type=ImportError)

# \r\n endings, a BOM, U+2028 and a form feed inside lines (not line breaks for mtst), blank lines, no final newline
AWKWARD = "\ufefffirst\r\nsecond \u2028 still second\n\nfourth \x0c here\n\n\nlast".encode()


def read_all(plan) -> pa.Table:
    source = ray_sources.ChunkedSource(plan)
    tasks = source.get_read_tasks(parallelism=3)
    return pa.concat_tables([block for task in tasks for block in task()])


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 100])
def test_lines_are_read_exactly_as_mtst_encode_reads_them(tmp_path, chunk_size):
    path = tmp_path / "in.txt"
    path.write_bytes(AWKWARD)
    plan = ray_sources.plan_input(path, chunk_size, "text")
    expected = list(_lines(path))
    assert plan.rows == len(expected) == 7 and len(plan.starts) == plan.chunks
    table = read_all(plan)
    assert table.column("text").to_pylist() == expected
    assert table.column(ROW).to_pylist() == list(range(7))


@pytest.mark.parametrize(("data", "rows"), [(b"", 0), (b"\n", 1), (b"a", 1), (b"a\nb\n", 2), (b"a\nb", 2)])
def test_line_counts_match_mtst_encode(tmp_path, data, rows):
    path = tmp_path / "in.txt"
    path.write_bytes(data)
    assert ray_sources.scan_lines(path, 1)[0] == rows == len(list(_lines(path)))


def test_every_task_yields_whole_chunks(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("".join(f"line {i}\n" for i in range(95)), encoding="utf-8")
    plan = ray_sources.plan_input(path, 10, "text")
    for task in ray_sources.ChunkedSource(plan).get_read_tasks(parallelism=4):
        for block in task():
            rows = block.column(ROW).to_numpy()
            assert rows[0] % 10 == 0 and (len(rows) == 10 or rows[-1] == 94)


def test_the_task_count_is_fixed_whatever_parallelism_ray_asks_for(tmp_path):
    """Ray splits each task's output into smaller blocks when it gets fewer tasks than it wants; the job passes
    ``override_num_blocks=num_tasks`` so that it never cuts a chunk."""
    path = tmp_path / "in.txt"
    path.write_text("x\n" * 95, encoding="utf-8")
    source = ray_sources.ChunkedSource(ray_sources.plan_input(path, 10, "text"))
    assert source.num_tasks == 10 == len(source.get_read_tasks(1)) == len(source.get_read_tasks(500))
    big = ray_sources.Plan("text", ("f",), 10**9, 4096, tuple(range(244141)))
    assert ray_sources.ChunkedSource(big).chunks_per_task == ray_sources.MAX_CHUNKS_PER_TASK


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\nfine\nbad \xff byte\n")
    with pytest.raises(MtstError, match="not UTF-8 text \\(invalid byte on line 3\\)"):
        ray_sources.plan_input(path, 2, "text")


def test_json_lines_keep_their_fields(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": f"t{i}"}) + "\n" for i in range(5)), encoding="utf-8")
    table = read_all(ray_sources.plan_input(path, 2, "text"))
    assert table.column_names == ["id", "text", ROW] and table.column("id").to_pylist() == list(range(5))


@pytest.mark.parametrize(("line", "fragment"), [("{oops", "line 2 is not valid JSON"), ("[1]", "line 2 is not a JSON"),
                                                ('{"row": 1}', "has a field 'row'")])
def test_bad_json_lines_are_one_line_errors(tmp_path, line, fragment):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(MtstError, match=fragment):
        read_all(ray_sources.plan_input(path, 5, "text"))


def test_parquet_rows_are_numbered_across_files_and_row_groups(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    texts = [f"sentence {i}" for i in range(53)]
    pq.write_table(pa.table({"id": np.arange(30), "text": texts[:30]}), folder / "a.parquet", row_group_size=7)
    pq.write_table(pa.table({"id": np.arange(30, 53), "text": texts[30:]}), folder / "b.parquet", row_group_size=5)
    plan = ray_sources.plan_input(folder, 4, "text")
    assert plan.rows == 53 and plan.starts == (30, 23)
    table = read_all(plan)
    assert table.column("text").to_pylist() == texts and table.column(ROW).to_pylist() == list(range(53))


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda d: d / "missing.txt", "input not found"),
    (lambda d: (d / "x.parquet").write_bytes(b"not parquet") and d / "x.parquet", "cannot read .* as Parquet"),
    (lambda d: pq.write_table(pa.table({"s": ["a"]}), d / "s.parquet") or d / "s.parquet", "no column 'text'"),
    (lambda d: pq.write_table(pa.table({"text": ["a"], "row": [1]}), d / "r.parquet") or d / "r.parquet",
     "already has a column 'row'"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "no .parquet files"),
])
def test_unreadable_inputs_are_one_line_errors(tmp_path, make, fragment):
    with pytest.raises(MtstError, match=fragment):
        ray_sources.plan_input(make(tmp_path), 4, "text")


def test_the_scan_is_the_same_in_tiny_reads(tmp_path, monkeypatch):
    """Offsets, counts and UTF-8 checks carry over read boundaries (multi-byte characters split between reads)."""
    path = tmp_path / "in.txt"
    lines = ["héllo wörld", "", "😀 emoji", "naïve café", "x", "last ünïcode"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    whole = ray_sources.scan_lines(path, 2)
    monkeypatch.setattr(ray_sources, "SCAN_BYTES", 3)
    assert ray_sources.scan_lines(path, 2) == whole and whole[0] == 6
    assert read_all(ray_sources.plan_input(path, 2, "text")).column("text").to_pylist() == lines
    path.write_bytes("\n".join(lines).encode() + b"\nbroken \xc3\n")
    with pytest.raises(MtstError, match="invalid byte on line 7"):
        ray_sources.scan_lines(path, 2)
