"""Load benchmark for ``mtst serve``: throughput and latency under concurrent clients, two request shapes.

    .venv/bin/python benchmarks/load/run.py                      # OpenVINO export of the default model (fastest)
    .venv/bin/python benchmarks/load/run.py --backend torch      # the saved model on PyTorch

Starts the real server (``python -m mtst.cli serve``) on 127.0.0.1 and drives POST /v1/embed with
keep-alive clients for a bounded time per level, in two modes:

- **single**: one sentence per request (16 and 64 clients): what a chat or search front end sends;
- **multi**: N sentences per request (default 32, 16 clients): what embedding clients such as
  LangChain's ``embed_documents`` send when indexing.

Sentences are the 2,552 unique STS-B test sentences (../shared/data/stsb/sts-test.csv), cycled in file
order. Then the same sentences are encoded offline (``encode``, batch 64) with the same model and backend
in this process while the server sits idle: "vs offline" is served sentences/s over that.

The default client is a minimal raw-asyncio HTTP/1.1 client (``rawhttp.py``) that parses every response
with orjson; ``--client httpx`` uses one httpx AsyncClient per simulated client instead. Client and server
share the machine's cores, so both processes' CPU time is reported, and the server's is split into the
event-loop thread (HTTP, validation, JSON) and the other threads (batcher, tokenizer, model).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

# Same OpenMP setting as `mtst serve` uses (it restarts itself with it), for the server and for the offline
# baseline in this process alike; set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rawhttp import Connection, RawHTTPError  # noqa: E402  (same folder)

ROOT = Path(__file__).resolve().parents[2]
STSB_TEST = ROOT.parent / "shared" / "data" / "stsb" / "sts-test.csv"
RESULTS = Path(__file__).resolve().parent / "results"


def stsb_sentences(path: Path) -> list[str]:
    """Unique STS-B test sentences in file order (tab-separated, no quoting; sentences in columns 5 and 6)."""
    if not path.exists():
        sys.exit(f"error: {path} not found; the load benchmark needs the STS-B test file")
    seen: dict[str, None] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            for text in row[5:7]:
                seen.setdefault(text, None)
    return list(seen)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _ticks(stat_path: Path) -> float:
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), to compare costs on a busy machine."""
    return _ticks(Path(f"/proc/{pid}/stat"))


def event_loop_cpu_seconds(pid: int) -> float:
    """CPU time of the process's main thread: uvicorn's event loop (HTTP, validation, JSON, metrics, log)."""
    return _ticks(Path(f"/proc/{pid}/task/{pid}/stat"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_model(backend: str, workdir: Path) -> Path | None:
    """torch: None (serve the default model); else export it (fp32 weights) once and return the export directory."""
    if backend == "torch":
        return None
    from mtst.cli.loading import load_task_model
    from mtst.inference.export import export_model

    target = workdir / f"export-{backend}"
    if (target / "export.json").exists():
        return target  # --work reuse
    source = workdir / "model"
    if not (source / "mtst_config.json").exists():
        load_task_model(None, "torch").save(source)
    return export_model(source, target, format=backend)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def batch_counters(port: int) -> dict[str, float]:
    """Gathered batches, their sentences and forward passes so far, from /metrics (passes: 0 on servers that
    predate the pass planner)."""
    names = {"mtst_batch_size_count": "batches", "mtst_batch_size_sum": "sentences",
             "mtst_forward_passes_total": "passes"}
    found = {"batches": 0.0, "sentences": 0.0, "passes": 0.0}
    for line in get(f"http://127.0.0.1:{port}/metrics").decode().splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            found[names[name]] = float(value)
    return found


def start_server(model_dir: Path | None, port: int, server_args: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "mtst.cli", "serve", "--port", str(port), "--max-queue", "100000", *server_args]
    if model_dir is not None:
        command += ["--model", str(model_dir)]
    env = {key: value for key, value in os.environ.items() if key != "MTST_API_KEY"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"error: the server exited with code {server.returncode}; run the command by hand: {command}")
        try:
            get(f"http://127.0.0.1:{port}/health")
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    sys.exit("error: the server did not answer /health within 180 s")


class RawClient:
    """One keep-alive connection; parses the whole response, as a real client would."""

    def __init__(self, port: int):
        self.connection = Connection("127.0.0.1", port)

    async def embed(self, body: bytes, expected: int) -> str | None:
        try:
            status, data = await self.connection.post("/v1/embed", body)
        except (RawHTTPError, OSError) as exc:
            return type(exc).__name__
        if status != 200:
            return str(status)
        return None if len(orjson.loads(data)["embeddings"]) == expected else "wrong-count"

    async def close(self) -> None:
        await self.connection.close()


class HttpxClient:
    """One httpx AsyncClient per simulated client (a shared 64-connection pool cost ~5x more CPU per request)."""

    def __init__(self, port: int):
        import httpx

        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60)

    async def embed(self, body: bytes, expected: int) -> str | None:
        import httpx

        try:
            response = await self.http.post("/v1/embed", content=body, headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if response.status_code != 200:
            return str(response.status_code)
        return None if len(response.json()["embeddings"]) == expected else "wrong-count"

    async def close(self) -> None:
        await self.http.aclose()


CLIENTS = {"raw": RawClient, "httpx": HttpxClient}


async def drive(port: int, sentences: list[str], clients: int, per_request: int, seconds: float, server_pid: int,
                client_kind: str) -> dict:
    """``clients`` loops, each sending ``per_request`` sentences per request until ``seconds`` have passed."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    cursor = 0
    stop = time.perf_counter() + seconds

    async def client_loop() -> None:
        nonlocal cursor
        client = CLIENTS[client_kind](port)
        try:
            while time.perf_counter() < stop:
                texts = [sentences[(cursor + i) % len(sentences)] for i in range(per_request)]
                cursor += per_request
                body = orjson.dumps({"sentences": texts})
                start = time.perf_counter()
                error = await client.embed(body, per_request)
                if error is None:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors[error] = errors.get(error, 0) + 1
        finally:
            await client.close()

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    server_before, loop_before = cpu_seconds(server_pid), event_loop_cpu_seconds(server_pid)
    began = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    server_cpu = cpu_seconds(server_pid) - server_before
    loop_cpu = event_loop_cpu_seconds(server_pid) - loop_before
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    requests = max(len(latencies), 1)
    return {
        "mode": "single" if per_request == 1 else "multi", "sentences_per_request": per_request,
        "clients": clients, "seconds": round(elapsed, 2), "requests": len(latencies),
        "errors": sum(errors.values()), "error_kinds": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "sentences_per_s": round(len(latencies) * per_request / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
        "p95_ms": round(percentile(latencies, 95) * 1000, 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
        "client_cpu_share": round(client_cpu / elapsed, 2),  # cores the load generator itself used
        "client_cpu_ms_per_request": round(client_cpu / requests * 1000, 3),
        "server_cpu_share": round(server_cpu / elapsed, 2),  # cores the server used
        "server_cpu_ms_per_request": round(server_cpu / requests * 1000, 3),
        "server_cpu_ms_per_sentence": round(server_cpu / requests / per_request * 1000, 3),
        "event_loop_cpu_ms_per_request": round(loop_cpu / requests * 1000, 3),
        "model_side_cpu_ms_per_sentence": round((server_cpu - loop_cpu) / requests / per_request * 1000, 3),
    }


async def single_client_latency(port: int, sentences: list[str], count: int) -> dict:
    latencies = []
    client = RawClient(port)
    try:
        for text in sentences[:count]:
            start = time.perf_counter()
            error = await client.embed(orjson.dumps({"sentences": [text]}), 1)
            if error is not None:
                sys.exit(f"error: single-client request failed: {error}")
            latencies.append(time.perf_counter() - start)
    finally:
        await client.close()
    return {"requests": len(latencies), "p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "p95_ms": round(percentile(latencies, 95) * 1000, 2)}


def offline_encode(model_dir: Path | None, sentences: list[str], batch_size: int) -> dict:
    from mtst.cli.loading import load_task_model

    predictor = load_task_model(model_dir, "auto")
    predictor.encode(sentences[:64], batch_size=batch_size)  # warm-up
    cpu = cpu_seconds(os.getpid())
    start = time.perf_counter()
    predictor.encode(sentences, batch_size=batch_size)
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(os.getpid()) - cpu
    return {"sentences": len(sentences), "batch_size": batch_size, "seconds": round(elapsed, 2),
            "runtime_precision": getattr(predictor, "runtime_precision", "fp32"),
            "throughput_per_s": round(len(sentences) / elapsed, 1),
            "cpu_ms_per_sentence": round(cpu / len(sentences) * 1000, 3)}


def environment(backend: str, client: str) -> dict:
    import fastapi
    import torch
    import uvicorn

    import mtst
    from mtst.cli.showcase import trained_default_available

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "mtst": mtst.__version__, "fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__,
            "orjson": orjson.__version__, "client": client, "backend": backend,
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "model": "shipped default (trained)" if trained_default_available() else "demo (untrained heads)"}


def print_table(result: dict) -> None:
    offline = result["offline_encode"]
    print(f"\nbackend {result['environment']['backend']}; offline encode {offline['throughput_per_s']} sentences/s "
          f"({offline['cpu_ms_per_sentence']} CPU ms/sentence); single-client p50 {result['single_client']['p50_ms']} "
          f"ms; load avg {result['load_average_before_after']}; client {result['environment']['client']}")
    print("| mode | sentences/request | clients | requests/s | sentences/s | vs offline | p50 ms | p95 ms | p99 ms "
          "| errors | server CPU ms/request (event loop) | server CPU ms/sentence | client CPU (cores) "
          "| sentences/batch (passes) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for level in result["concurrent"]:
        print(f"| {level['mode']} | {level['sentences_per_request']} | {level['clients']} | "
              f"{level['requests_per_s']} | {level['sentences_per_s']} | {level['ratio_to_offline']:.0%} | "
              f"{level['p50_ms']} | {level['p95_ms']} | {level['p99_ms']} | {level['errors']} | "
              f"{level['server_cpu_ms_per_request']} ({level['event_loop_cpu_ms_per_request']}) | "
              f"{level['server_cpu_ms_per_sentence']} | {level['client_cpu_share']} | "
              f"{level['mean_sentences_per_batch']} ({level['mean_passes_per_batch']}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["torch", "onnx", "openvino"], default="openvino",
                        help="torch serves the default model as saved; onnx / openvino serve an fp32 export of it")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration per level")
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64], help="single mode: concurrent clients")
    parser.add_argument("--multi", type=int, default=32, help="multi mode: sentences per request (0: skip the mode)")
    parser.add_argument("--multi-clients", type=int, nargs="+", default=[16], help="multi mode: concurrent clients")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw", help="load generator")
    parser.add_argument("--single", type=int, default=300, help="sequential requests for single-client latency")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra `mtst serve` option, repeatable, e.g. --server-arg=--max-wait-ms=2")
    parser.add_argument("--work", type=Path, default=None, help="keep the saved model and export here (reused)")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default results/<backend>.json)")
    args = parser.parse_args()

    sentences = stsb_sentences(STSB_TEST)
    levels_wanted = [(1, clients) for clients in args.clients]
    levels_wanted += [(args.multi, clients) for clients in args.multi_clients] if args.multi > 0 else []
    with tempfile.TemporaryDirectory(prefix="mtst-load-") as scratch:
        workdir = args.work or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        model_dir = prepare_model(args.backend, workdir)
        port = free_port()
        load_before = os.getloadavg()
        server = start_server(model_dir, port, args.server_arg)
        try:
            # warm-up: threads, allocator, connections, both request shapes
            asyncio.run(drive(port, sentences, 8, 1, 2.0, server.pid, args.client))
            if args.multi > 0:
                asyncio.run(drive(port, sentences, 4, args.multi, 2.0, server.pid, args.client))
            single = asyncio.run(single_client_latency(port, sentences, args.single))
            levels = []
            for per_request, clients in levels_wanted:
                before = batch_counters(port)
                level = asyncio.run(drive(port, sentences, clients, per_request, args.seconds, server.pid, args.client))
                after = batch_counters(port)
                batches = max(after["batches"] - before["batches"], 1)
                level["mean_sentences_per_batch"] = round((after["sentences"] - before["sentences"]) / batches, 1)
                level["mean_passes_per_batch"] = round((after["passes"] - before["passes"]) / batches, 2)
                levels.append(level)
        finally:
            server.terminate()
            server.wait(60)
        offline = offline_encode(model_dir, sentences, 64)
        load_after = os.getloadavg()

    result = {
        "command": "python " + " ".join([str(Path(sys.argv[0]).relative_to(ROOT)
                                              if Path(sys.argv[0]).is_absolute() else sys.argv[0]), *sys.argv[1:]]),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "environment": environment(args.backend, args.client),
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "settings": {"endpoint": "POST /v1/embed", "server_args": args.server_arg,
                     "distinct_sentences": len(sentences)},
        "single_client": single,
        "concurrent": levels,
        "offline_encode": offline,
    }
    for level in levels:
        level["ratio_to_offline"] = round(level["sentences_per_s"] / offline["throughput_per_s"], 2)
        # CPU-time ratio: compute per served sentence next to one offline sentence. Unlike the throughput
        # ratio it hardly depends on what else runs on the machine.
        level["cpu_efficiency"] = round(offline["cpu_ms_per_sentence"] / level["server_cpu_ms_per_sentence"], 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / f"{args.backend}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print_table(result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
