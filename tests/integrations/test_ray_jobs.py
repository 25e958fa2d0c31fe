"""Ray jobs on a local Ray cluster started here (2 CPUs): the same floats as the single-process path, an actor
killed mid-task costs nothing (Ray retries, the ledger sees every row once), Parquet in and out, the CLI's
``--engine ray``, and errors raised inside Ray coming back as one line."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from helpers import run_doc_snippet, write_random_lines
from mtst.cli import app
from mtst.inference.bulk import encode_file
from mtst.integrations.ray_data import EMBEDDING, ROW, ModelSpec, PredictOptions
from mtst.integrations.ray_jobs import RayJob, run_job

ray = pytest.importorskip("ray")
runner = CliRunner()


@pytest.fixture(scope="module")
def cluster():
    # Actors are new processes: they find mtst as this one does (installed, or PYTHONPATH, which they inherit).
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)  # as mtst connects
    yield
    ray.shutdown()


@pytest.fixture
def model_dir(tiny_model, tmp_path):
    return tiny_model.save(tmp_path / "model")


class KillBusyActor(threading.Thread):
    """SIGKILLs the first MtstPredictor actor seen running a task (Ray titles it ``...MtstPredictor)).submit``),
    as the OOM killer or a lost node would."""

    def __init__(self):
        super().__init__(daemon=True)
        self.killed: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.killed is None:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
                except OSError:
                    continue
                if title.startswith(b"ray::MapWorker(") and b"MtstPredictor" in title and title.endswith(b".submit"):
                    os.kill(int(pid), signal.SIGKILL)
                    self.killed = int(pid)
                    return
            time.sleep(0.005)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds Ray's actors through /proc")
def test_npy_equals_one_process_exactly_with_an_actor_killed_mid_task(cluster, bare_model, tiny_st_dir, tmp_path):
    path = tmp_path / "in.txt"
    write_random_lines(path, count=2400, max_words=30, empty_line=3, seed=1)
    single = np.load(encode_file(bare_model, path, tmp_path / "one.npy", chunk_size=800))
    killer = KillBusyActor()
    killer.start()
    try:
        job = RayJob(path, tmp_path / "ray.npy", actors=2, chunk_size=800)  # 3 chunks: fewer tasks than Ray wants
        out = run_job(job, ModelSpec(backbone=str(tiny_st_dir)), PredictOptions())
    finally:
        killer.stop.set()
    assert killer.killed is not None, "no actor was caught running a task"
    assert np.array_equal(np.load(out), single), "same chunks, same batches: the same floats, every row once"
    other = np.load(encode_file(bare_model, path, tmp_path / "other.npy", chunk_size=7))
    assert not np.array_equal(other, single), "the comparison is sharp: other batches give other float roundings"
    (tmp_path / "other.npy").unlink()
    (tmp_path / "other.npy.truncated.json").unlink()  # one-process runs record their cut rows beside the array
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "one.npy", "one.npy.truncated.json", "ray.npy",
                                                          "ray.npy.truncated.json"]
    sidecars = [json.loads((tmp_path / f"{name}.npy.truncated.json").read_text()) for name in ("one", "ray")]
    assert sidecars[1] == sidecars[0] and sidecars[1]["rows"] == 2400, "the sidecar mtst encode writes"


def test_predictions_from_parquet_files_into_parts(cluster, model_dir, tmp_path):
    from mtst import MultiTaskModel

    folder = tmp_path / "data"
    folder.mkdir()
    texts = write_random_lines(tmp_path / "lines.txt", count=70, max_words=12, empty_line=5, seed=2)
    pq.write_table(pa.table({"id": np.arange(40), "text": texts[:40]}), folder / "a.parquet", row_group_size=9)
    pq.write_table(pa.table({"id": np.arange(40, 70), "text": texts[40:]}), folder / "b.parquet")
    out = run_job(RayJob(folder, tmp_path / "preds", chunk_size=16), ModelSpec(str(model_dir)),
                  PredictOptions(tasks=None))
    table = pq.read_table(out).sort_by(ROW)
    assert table.column(ROW).to_pylist() == list(range(70)) and table.column("id").to_pylist() == list(range(70))
    model = MultiTaskModel.load(model_dir)
    expected = [row for start in range(0, 70, 16)
                for row in model.predict(texts[start : start + 16], include_embedding=True)]
    for got, want in zip(table.to_pylist(), expected, strict=True):
        assert (got["text"], got["topic"], got["ner"]) == (want["text"], want["topic"], want["ner"])
        assert np.array_equal(np.float32(got[EMBEDDING]), np.float32(want[EMBEDDING]))


def test_cli_encode_on_ray_writes_the_same_json_lines_as_one_process(cluster, tiny_st_dir, tmp_path):
    path = tmp_path / "in.txt"
    write_random_lines(path, count=40, max_words=20, empty_line=7, seed=3)
    common = ["encode", "--input", str(path), "--backbone", str(tiny_st_dir)]
    assert runner.invoke(app, [*common, "-o", str(tmp_path / "one.jsonl")]).exit_code == 0
    result = runner.invoke(app, [*common, "-o", str(tmp_path / "ray.jsonl"), "--engine", "ray", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()


def test_cli_predict_on_ray_reads_json_lines_and_writes_parquet(cluster, model_dir, tmp_path):
    from mtst import MultiTaskModel

    texts = ["john smith lives in paris", "the stock fell", "mary visited london today"]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"doc": i, "body": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    result = runner.invoke(app, ["predict", "--engine", "ray", "--input", str(source), "--column", "body",
                                 "--model", str(model_dir), "--tasks", "topic", "-o", str(tmp_path / "out.parquet")])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    expected = MultiTaskModel.load(model_dir).predict(texts, tasks=["topic"])
    assert rows == [{"doc": i, "body": t, "topic": e["topic"], "truncated": False}  # Arrow: a column on every row
                    for i, (t, e) in enumerate(zip(texts, expected))]


def test_an_error_inside_ray_is_one_line_and_writes_nothing(cluster, tiny_st_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "fine"}\n{"text": "fine too"}\n{not json\n', encoding="utf-8")
    result = runner.invoke(app, ["encode", "--engine", "ray", "--input", str(source), "--backbone", str(tiny_st_dir),
                                 "-o", str(tmp_path / "out.npy")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "line 3 is not valid JSON" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["in.jsonl"]


def test_the_docs_pipeline_snippet_runs(cluster, model_dir, tmp_path):
    from mtst import MultiTaskModel

    folder = tmp_path / "docs"
    folder.mkdir()
    texts = ["john smith lives in paris", "the stock fell", "mary visited london today", "the cat sat"]
    pq.write_table(pa.table({"text": texts[:2]}), folder / "a.parquet")
    pq.write_table(pa.table({"text": texts[2:]}), folder / "b.parquet")
    run_doc_snippet("ray.md", "ray-pipeline", {"/shared/my-model": str(model_dir), "/shared/docs/": str(folder),
                                               "/shared/predictions/": str(tmp_path / "out"), "size=7": "size=1"})
    rows = sorted(pq.read_table(tmp_path / "out").to_pylist(), key=lambda row: texts.index(row["text"]))
    expected = MultiTaskModel.load(model_dir).predict(texts, include_embedding=True)
    assert [row["topic"]["label"] for row in rows] == [row["topic"]["label"] for row in expected]
    spans = [[(e["text"], e["label"], e["start"], e["end"]) for e in row["ner"]] for row in expected]
    assert [[(e["text"], e["label"], e["start"], e["end"]) for e in row["ner"]] for row in rows] == spans
    np.testing.assert_allclose(np.float32([r[EMBEDDING] for r in rows]), [r[EMBEDDING] for r in expected], atol=1e-6)
