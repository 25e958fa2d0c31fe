"""Serving under load: ``mtst serve`` driven by concurrent keep-alive clients on POST /v1/embed, two request shapes.

    make bench-load                                      # = .venv/bin/python -m benchmarks.load (OpenVINO export)
    .venv/bin/python -m benchmarks.load --backend torch  # the saved default model on PyTorch

**single**: one sentence per request (16 and 64 clients: a chat or search front end); **multi**: N sentences per
request (default 32, 16 clients: an indexing client such as LangChain's ``embed_documents``). The unique STS-B test
sentences are cycled in file order, every response is parsed (rawhttp.py). "vs offline": served sentences/s over
``encode`` (batch 64) of the same sentences with the same model and backend in this process, the server idle.
Client and server share the cores, so both processes' CPU time is reported, the server's split into its event-loop
thread (HTTP, validation, JSON) and the rest (batcher, tokenizer, model).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import orjson

from benchmarks.common import cpu_seconds, run_metadata, stsb_sentences, write_result
from benchmarks.load.rawhttp import Connection, RawHTTPError

RESULTS = Path(__file__).resolve().parent / "results"
MULTI_CLIENTS = 16
METRICS = {"mtst_batch_size_count": "batches", "mtst_batch_size_sum": "sentences",
           "mtst_forward_passes_total": "passes"}


def get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.read()


def batch_counters(port: int) -> dict[str, float]:
    """Gathered batches, their sentences and forward passes so far, from /metrics."""
    found = dict.fromkeys(METRICS.values(), 0.0)
    for name, _, value in (line.partition(" ") for line in get(port, "/metrics").decode().splitlines()):
        if name in METRICS:
            found[METRICS[name]] = float(value)
    return found


def start_server(model_dir: Path | None, server_args: list[str]) -> tuple[subprocess.Popen, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "mtst.cli", "serve", "--port", str(port), "--max-queue", "100000", *server_args]
    command += ["--model", str(model_dir)] if model_dir is not None else []
    env = {key: value for key, value in os.environ.items() if key != "MTST_API_KEY"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"error: the server exited with code {server.returncode}; run the command by hand: {command}")
        try:
            get(port, "/health")
            return server, port
        except OSError:
            time.sleep(0.2)
    server.kill()
    sys.exit("error: the server did not answer /health within 180 s")


async def drive(port: int, sentences: list[str], clients: int, per_request: int, seconds: float, server: int) -> dict:
    """``clients`` loops, each sending ``per_request`` sentences per request until ``seconds`` have passed."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    cursor = 0
    stop = time.perf_counter() + seconds

    async def client_loop() -> None:
        nonlocal cursor
        connection = Connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                texts = [sentences[(cursor + i) % len(sentences)] for i in range(per_request)]
                cursor += per_request
                start = time.perf_counter()
                try:  # a success: status 200 and one embedding per sentence
                    status, data = await connection.post("/v1/embed", orjson.dumps({"sentences": texts}))
                    error = str(status) if status != 200 else (
                        None if len(orjson.loads(data)["embeddings"]) == len(texts) else "wrong-count")
                except (RawHTTPError, OSError) as exc:
                    error = type(exc).__name__
                if error is None:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors[error] = errors.get(error, 0) + 1
        finally:
            await connection.close()

    def cpu() -> np.ndarray:  # this process, the server, the server's event-loop thread
        return np.array([cpu_seconds(), cpu_seconds(server), cpu_seconds(server, thread=True)])

    counters, before, began = batch_counters(port), cpu(), time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    client_cpu, server_cpu, loop_cpu = cpu() - before
    per_ms, done = 1000 / max(len(latencies), 1), len(latencies)
    batches = {key: value - counters[key] for key, value in batch_counters(port).items()}
    ms = {f"p{q}_ms": round(float(np.percentile(latencies, q, method="nearest")) * 1000, 2) if latencies else None
          for q in (50, 95, 99)}
    return {
        "mode": "single" if per_request == 1 else "multi", "sentences_per_request": per_request, "clients": clients,
        "seconds": round(elapsed, 2), "requests": done, "errors": sum(errors.values()), "error_kinds": errors,
        "requests_per_s": round(done / elapsed, 1), "sentences_per_s": round(done * per_request / elapsed, 1), **ms,
        "client_cpu_share": round(client_cpu / elapsed, 2),  # cores the load generator itself used
        "client_cpu_ms_per_request": round(client_cpu * per_ms, 3),
        "server_cpu_share": round(server_cpu / elapsed, 2),  # cores the server used
        "server_cpu_ms_per_request": round(server_cpu * per_ms, 3),
        "server_cpu_ms_per_sentence": round(server_cpu * per_ms / per_request, 3),
        "event_loop_cpu_ms_per_request": round(loop_cpu * per_ms, 3),
        "model_side_cpu_ms_per_sentence": round((server_cpu - loop_cpu) * per_ms / per_request, 3),
        "mean_sentences_per_batch": round(batches["sentences"] / max(batches["batches"], 1), 1),
        "mean_passes_per_batch": round(batches["passes"] / max(batches["batches"], 1), 2)}


def offline_encode(model_dir: Path | None, sentences: list[str], batch_size: int = 64) -> dict:
    from mtst.inference.backends import load_predictor

    predictor = load_predictor(model_dir)
    predictor.encode(sentences[:64], batch_size=batch_size)  # warm-up
    cpu, start = cpu_seconds(), time.perf_counter()
    predictor.encode(sentences, batch_size=batch_size)
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return {"sentences": len(sentences), "batch_size": batch_size, "seconds": round(elapsed, 2),
            "runtime_precision": getattr(predictor.runtime, "runtime_precision", "fp32"),
            "throughput_per_s": round(len(sentences) / elapsed, 1),
            "cpu_ms_per_sentence": round(cpu / len(sentences) * 1000, 3)}


def main() -> None:
    if "OMP_WAIT_POLICY" not in os.environ:  # read when OpenMP starts: restart with the setting `mtst serve` uses,
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # for the server and the offline baseline alike
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.load", *sys.argv[1:]], env)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["torch", "onnx", "openvino"], default="openvino",
                        help="torch serves the default model as saved; onnx / openvino serve an fp32 export of it")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration per level")
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64], help="single mode: concurrent clients")
    parser.add_argument("--multi", type=int, default=32,
                        help=f"multi mode ({MULTI_CLIENTS} clients): sentences per request (0: skip the mode)")
    parser.add_argument("--single", type=float, default=5.0, help="seconds of one client's sequential requests")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra `mtst serve` option, repeatable, e.g. --server-arg=--max-wait-ms=2")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default results/<backend>.json)")
    args = parser.parse_args()
    from mtst.inference.export import export_model

    sentences, started, load_before = stsb_sentences(), time.time(), os.getloadavg()
    multi = [args.multi] if args.multi > 0 else []
    with tempfile.TemporaryDirectory(prefix="mtst-load-") as scratch:
        model_dir = None if args.backend == "torch" else export_model(None, Path(scratch) / "export", args.backend)
        server, port = start_server(model_dir, args.server_arg)

        def run(clients: int, per_request: int, seconds: float) -> dict:
            return asyncio.run(drive(port, sentences, clients, per_request, seconds, server.pid))

        try:  # warm-up: threads, allocator, connections, both request shapes
            for clients, per_request in [(8, 1), *((4, n) for n in multi)]:
                run(clients, per_request, 2.0)
            single = run(1, 1, args.single)
            levels = [run(clients, 1, args.seconds) for clients in args.clients]
            levels += [run(MULTI_CLIENTS, n, args.seconds) for n in multi]
        finally:
            server.terminate()
            server.wait(60)
        offline = offline_encode(model_dir, sentences)
    for level in levels:
        level["ratio_to_offline"] = round(level["sentences_per_s"] / offline["throughput_per_s"], 2)
        # CPU per offline sentence over CPU per served one: unlike the ratio it hardly depends on other jobs
        level["cpu_efficiency"] = round(offline["cpu_ms_per_sentence"] / level["server_cpu_ms_per_sentence"], 2)
    result = {**run_metadata("-m benchmarks.load " + " ".join(sys.argv[1:]), started, load_before, None),
              "backend": args.backend,
              "settings": {"endpoint": "POST /v1/embed", "server_args": args.server_arg, "client": "raw",
                           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "distinct_sentences": len(sentences)},
              "single_client": single, "concurrent": levels, "offline_encode": offline}
    write_result(out := args.out or RESULTS / f"{args.backend}.json", result)
    print(f"wrote {out}: single client p50 {single['p50_ms']} ms; sentences/s per level "
          f"{[level['sentences_per_s'] for level in levels]} vs {offline['throughput_per_s']} offline")


if __name__ == "__main__":
    main()
