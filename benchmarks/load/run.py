"""Load benchmark for ``mtst serve``: throughput and latency under 16 and 64 concurrent clients.

    .venv/bin/python benchmarks/load/run.py                      # OpenVINO export of the default model (fastest)
    .venv/bin/python benchmarks/load/run.py --backend torch      # the saved model on PyTorch

Starts the real server (``python -m mtst.cli serve``) on 127.0.0.1, sends single-sentence POST /v1/embed
requests built from STS-B test sentences (../shared/data/stsb/sts-test.csv) with httpx async clients for a
bounded time per concurrency level, then measures offline ``encode`` of the same sentences with the same
model and backend in this process, while the server sits idle. Writes JSON to benchmarks/load/results/ and
prints a markdown table. Client and server share the machine's cores: the client's CPU time is reported.
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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

# Same OpenMP setting as `mtst serve` uses (it restarts itself with it), for the server and for the offline
# baseline in this process alike; set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), to compare costs on a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_model(backend: str, workdir: Path) -> Path | None:
    """torch: None (serve the default model); else export it (fp32 weights) and return the export directory."""
    if backend == "torch":
        return None
    from mtst.cli import load_task_model
    from mtst.export import export_model

    source = workdir / "model"
    load_task_model(None, "torch").save(source)
    return export_model(source, workdir / f"export-{backend}", format=backend)


def start_server(model_dir: Path | None, port: int, max_batch: int, max_wait_ms: float) -> subprocess.Popen:
    command = [sys.executable, "-m", "mtst.cli", "serve", "--port", str(port), "--max-batch", str(max_batch),
               "--max-wait-ms", str(max_wait_ms), "--max-queue", "100000"]
    if model_dir is not None:
        command += ["--model", str(model_dir)]
    env = {key: value for key, value in os.environ.items() if key != "MTST_API_KEY"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"error: the server exited with code {server.returncode}; run the command by hand: {command}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    sys.exit("error: the server did not answer /health within 180 s")


async def drive(url: str, sentences: list[str], clients: int, seconds: float, server_pid: int) -> dict:
    """``clients`` loops, each sending one sentence at a time until ``seconds`` have passed."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    cursor = 0
    stop = time.perf_counter() + seconds

    async def client_loop() -> None:
        # One AsyncClient (one keep-alive connection) per simulated client: a single shared pool with 64
        # connections cost the load generator ~5x more CPU per request than with 16 and starved the server.
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            await send_until_stop(http)

    async def send_until_stop(http: httpx.AsyncClient) -> None:
        nonlocal cursor
        while time.perf_counter() < stop:
            text = sentences[cursor % len(sentences)]
            cursor += 1
            start = time.perf_counter()
            try:
                response = await http.post("/v1/embed", json={"sentences": [text]})
                ok = response.status_code == 200 and len(response.json()["embeddings"][0]) > 0
                key = None if ok else str(response.status_code)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            if key is None:
                latencies.append(time.perf_counter() - start)
            else:
                errors[key] = errors.get(key, 0) + 1

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    server_before = cpu_seconds(server_pid)
    began = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    server_cpu = cpu_seconds(server_pid) - server_before
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "clients": clients, "seconds": round(elapsed, 2), "requests": len(latencies),
        "errors": sum(errors.values()), "error_kinds": errors,
        "throughput_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
        "p95_ms": round(percentile(latencies, 95) * 1000, 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
        "client_cpu_share": round(client_cpu / elapsed, 2),  # cores the load generator itself used
        "server_cpu_share": round(server_cpu / elapsed, 2),  # cores the server used
        "server_cpu_ms_per_request": round(server_cpu / max(len(latencies), 1) * 1000, 3),
    }


def single_client_latency(url: str, sentences: list[str], count: int) -> dict:
    latencies = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for text in sentences[:count]:
            start = time.perf_counter()
            response = http.post("/v1/embed", json={"sentences": [text]})
            response.raise_for_status()
            latencies.append(time.perf_counter() - start)
    return {"requests": len(latencies), "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p95_ms": round(percentile(latencies, 95) * 1000, 2)}


def offline_encode(model_dir: Path | None, sentences: list[str], batch_size: int) -> dict:
    from mtst.cli import load_task_model

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


def environment(backend: str) -> dict:
    import fastapi
    import torch
    import uvicorn

    import mtst
    from mtst.demo import trained_default_available

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "mtst": mtst.__version__, "fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__,
            "httpx": httpx.__version__, "backend": backend, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "model": "shipped default (trained)" if trained_default_available() else "demo (untrained heads)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["torch", "onnx", "openvino"], default="openvino",
                        help="torch serves the default model as saved; onnx / openvino serve an fp32 export of it")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration per concurrency level")
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--single", type=int, default=300, help="sequential requests for single-client latency")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default results/<backend>.json)")
    args = parser.parse_args()

    sentences = stsb_sentences(STSB_TEST)
    backend = args.backend
    with tempfile.TemporaryDirectory(prefix="mtst-load-") as workdir:
        model_dir = prepare_model(backend, Path(workdir))
        port = free_port()
        load_before = os.getloadavg()
        server = start_server(model_dir, port, args.max_batch, args.max_wait_ms)
        url = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(drive(url, sentences, 8, 2.0, server.pid))  # warm-up: threads, allocator, connections
            single = single_client_latency(url, sentences, args.single)
            levels = [asyncio.run(drive(url, sentences, clients, args.seconds, server.pid)) for clients in args.clients]
            metrics = httpx.get(f"{url}/metrics").text
        finally:
            server.terminate()
            server.wait(60)
        offline = offline_encode(model_dir, sentences, args.max_batch)
        load_after = os.getloadavg()

    batches = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
               if line.startswith(("mtst_batch_size_sum", "mtst_batch_size_count"))}
    result = {
        "command": "python " + " ".join([str(Path(sys.argv[0]).relative_to(ROOT)
                                              if Path(sys.argv[0]).is_absolute() else sys.argv[0]), *sys.argv[1:]]),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "environment": environment(backend),
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "settings": {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "endpoint": "POST /v1/embed",
                     "sentences_per_request": 1, "distinct_sentences": len(sentences)},
        "single_client": single,
        "concurrent": levels,
        "offline_encode": offline,
        "mean_batch_size": round(batches["mtst_batch_size_sum"] / max(batches["mtst_batch_size_count"], 1), 1),
    }
    for level in levels:
        level["ratio_to_offline"] = round(level["throughput_per_s"] / offline["throughput_per_s"], 2)
        # CPU-time ratio: how much compute one served sentence costs next to one offline sentence. Unlike the
        # throughput ratio it does not depend on what else runs on the machine.
        level["cpu_efficiency"] = round(offline["cpu_ms_per_sentence"] / level["server_cpu_ms_per_request"], 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / f"{backend}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)

    print(f"\nbackend {backend}; offline encode {offline['throughput_per_s']}/s; single-client p50 "
          f"{single['p50_ms']} ms; mean batch {result['mean_batch_size']}; "
          f"load avg {result['load_average_before_after']}")
    print("| clients | requests/s | vs offline | p50 ms | p95 ms | p99 ms | errors | server CPU ms/request "
          "(offline ms/sentence) | client CPU (cores) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for level in levels:
        print(f"| {level['clients']} | {level['throughput_per_s']} | {level['ratio_to_offline']:.0%} | "
              f"{level['p50_ms']} | {level['p95_ms']} | {level['p99_ms']} | {level['errors']} | "
              f"{level['server_cpu_ms_per_request']} ({offline['cpu_ms_per_sentence']}) | "
              f"{level['client_cpu_share']} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
