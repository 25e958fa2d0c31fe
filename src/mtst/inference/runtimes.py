"""Runtimes for exported directories (ONNX Runtime, OpenVINO): what a ``Predictor`` runs on outside torch.

A runtime loads the graph and runs it on a batch; everything else (checks, batching, rows) is the Predictor's
(mtst.model.predictor), so an export answers ``encode`` and ``predict`` exactly as the torch model does. Decoding
reuses each head's ``decode``: heads are rebuilt from their config and only their decoding parameters (labels, a
CRF's transitions) are loaded, never run. Batches are cut by token length with a token budget.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mtst.errors import MtstError, first_line
from mtst.inference.export import INPUT_NAMES, SHAPE_INPUT, file_sha256, read_export_info
from mtst.inference.graph_parts import check_outputs, encoder_graph, heads_graph
from mtst.model.config import CONFIG_FILE, ModelConfig
from mtst.model.cpu_paths import DEFAULT_BATCH_SIZE, CpuPath
from mtst.model.heads import Head
from mtst.model.storage import HEADS_FILE, load_weights
from mtst.model.tasks import task_type
from mtst.model.tokenization import TextTokenizer

DEFAULT_MAX_TOKENS = 8192  # padded tokens per batch: keeps long-text batches from growing without bound


def default_threads() -> int:
    """Cores this process may use (respects taskset / cgroup CPU affinity)."""
    return len(os.sched_getaffinity(0))


@contextmanager
def _single_torch_thread() -> Iterator[None]:
    """Decoding runs tiny torch ops (softmax over (B, T, C) logits); with several intra-op threads on a busy
    machine each one waited for a descheduled thread (29 ms instead of 1.8 ms per softmax, measured here)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ExportedRuntime:
    """Shared part (the mtst.model.predictor.Runtime protocol): config, tokenizer, head decoders, numpy feeds.
    Subclasses load and run the graph."""

    backend = "exported"

    def __init__(self, directory: str | Path, threads: int | None = None):
        from transformers import AutoTokenizer

        from mtst.model.storage import read_config

        self.directory = Path(directory)
        info = read_export_info(self.directory)
        if info is None:
            raise MtstError(f"{self.directory} is not an exported model (no export.json); "
                            f"export it first: mtst export --model {self.directory} --format onnx --out DIR")
        self.info = info
        self.config: ModelConfig = read_config(self.directory)
        if file_sha256(self.directory / CONFIG_FILE) != info.get("config_sha256"):
            raise MtstError(f"{self.directory / CONFIG_FILE} does not match the exported graph (config hash differs); "
                            "export the model again")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.directory), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise MtstError(f"cannot load the tokenizer in {self.directory}: {first_line(exc)}") from exc
        if len(tokenizer) > int(info.get("vocab_size", 0)):
            raise MtstError(f"tokenizer in {self.directory} has {len(tokenizer)} tokens but the graph's embedding has "
                            f"{info.get('vocab_size')} rows; tokenizer and model do not match, export again")
        self.tokenizer = TextTokenizer(tokenizer, self.config.encoder.max_seq_length)
        self.heads: dict[str, Head] = {name: task_type(cfg.type).build_head(cfg)
                                       for name, cfg in self.config.heads.items() if task_type(cfg.type).predicts}
        self._load_head_weights()
        self.inputs: list[str] = list(info.get("inputs", INPUT_NAMES))
        self.tokenizer.word_shapes = SHAPE_INPUT in self.inputs
        self.output_names: list[str] = list(info["outputs"])
        self.normalized = self.config.encoder.normalize  # the graph L2-normalises its embeddings
        self.threads = threads or default_threads()
        if self.threads < 1:
            raise MtstError(f"threads must be at least 1, got {self.threads}")
        self.max_tokens: int | None = DEFAULT_MAX_TOKENS
        graph = self.directory / info["graph"]
        if not graph.exists():
            raise MtstError(f"{graph} is missing; the exported directory is incomplete, export again")
        self._load(graph)

    def _load_head_weights(self) -> None:
        """Decoding needs head parameters the graph does not hold (a CRF's transitions); exports before
        heads.safetensors was copied along decode by arg-max only, which needs none."""
        heads_file = self.directory / HEADS_FILE
        if heads_file.exists():
            load_weights(nn.ModuleDict(self.heads), heads_file, self.directory)
        elif any(cfg.crf for cfg in self.config.heads.values()):
            raise MtstError(f"{self.directory} has no {HEADS_FILE}, which its CRF heads decode with; export again")

    @property
    def precision(self) -> str:
        return str(self.info.get("precision", "fp32"))

    def _load(self, graph: Path) -> None:
        raise NotImplementedError

    def run_graph(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """input_ids / attention_mask (B, T) int64 -> every named output as a numpy array."""
        raise NotImplementedError

    def run_embeddings(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """(B, H) sentence embeddings; runtimes that can skip the heads override this."""
        return self.run_graph(feeds)["sentence_embedding"]

    def run_heads(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every ``logits_<task>`` output; runtimes that can skip the embedding path override this (with a task
        branch it holds its own copy of the top layers, which the heads never read)."""
        return self.run_graph(feeds)

    @property
    def head_outputs(self) -> list[str]:
        return [name for name in self.output_names if name != "sentence_embedding"]

    # ---- the Runtime protocol ------------------------------------------------------------------
    def batching(self, call: str) -> tuple[int, int | None]:
        return DEFAULT_BATCH_SIZE, None  # max_tokens (DEFAULT_MAX_TOKENS unless set) cuts long passes

    def running(self) -> AbstractContextManager:
        return nullcontext()

    def decoding(self) -> AbstractContextManager:
        return _single_torch_thread()

    def embed(self, batch: dict[str, torch.Tensor], normalize: bool) -> np.ndarray:
        vectors = self.run_embeddings(self._feeds(batch)).astype(np.float32)  # (B, H)
        if normalize and not self.normalized:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
        return vectors

    def run(self, batch: dict[str, torch.Tensor], tasks: Sequence[str], include_embedding: bool) -> dict:
        feeds = self._feeds(batch)
        out = self.run_graph(feeds) if include_embedding else self.run_heads(feeds)
        logits = {task: torch.from_numpy(np.ascontiguousarray(out[f"logits_{task}"], dtype=np.float32))
                  for task in tasks}
        embedding = out["sentence_embedding"].astype(np.float32) if include_embedding else None
        return {"logits": logits, "sentence_embedding": embedding}

    def _feeds(self, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        # encode tokenizes ids only (no shape_ids): its embedding graph needs no more
        return {name: batch[name].numpy() for name in self.inputs if name in batch}


class OnnxRuntime(ExportedRuntime):
    """ONNX Runtime on CPU; intra-op threads = ``threads``, one inter-op thread (one request at a time).

    ONNX Runtime runs every node of a graph whatever outputs are fetched (its profiler showed the NER head's
    convolution running for ``run(["sentence_embedding"])``), so ``encode`` runs the encoder part of the graph
    cut at the embedding (``encoder_graph``; int8: 11.5 % less CPU). ``predict`` runs the whole graph in one
    session, created on first use: the two parts one after the other made all heads cost 1.44x the embeddings
    alone, the whole graph 1.06x (benchmarks/speed/HISTORY.md, "ONNX `predict` through the whole graph").
    ``predict`` without the embedding runs the graph cut at the heads' outputs instead (``heads_graph``: with a
    task branch, the embedding path's own layers are left out). Each session is created on first use, so
    encode-only users never load the others.
    """

    backend = "onnx"

    def _load(self, graph: Path) -> None:
        import onnxruntime as ort

        self._options = ort.SessionOptions()
        self._options.intra_op_num_threads = self.threads
        self._options.inter_op_num_threads = 1
        self._options.log_severity_level = 3
        self._graph, self._whole, self._heads = graph, None, None
        try:
            encoder = encoder_graph(graph, self.output_names)
            self.session = ort.InferenceSession(encoder, self._options, providers=["CPUExecutionProvider"])
        except MtstError:
            raise
        except Exception as exc:  # onnx / onnxruntime raise their own exception types
            raise MtstError(f"cannot load {graph}: {first_line(exc)}; the file looks corrupt, export again") from exc

    def run_graph(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._whole is None:
            import onnxruntime as ort

            self._whole = ort.InferenceSession(str(self._graph), self._options, providers=["CPUExecutionProvider"])
        return dict(zip(self.output_names, self._whole.run(self.output_names, feeds), strict=True))

    def run_heads(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._heads is None:
            import onnxruntime as ort

            graph = heads_graph(self._graph, self.inputs, self.head_outputs)
            self._heads = ort.InferenceSession(graph, self._options, providers=["CPUExecutionProvider"])
        return dict(zip(self.head_outputs, self._heads.run(self.head_outputs, feeds), strict=True))

    def run_embeddings(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["sentence_embedding"], {name: feeds[name] for name in INPUT_NAMES})[0]


class OpenVINORuntime(ExportedRuntime):
    """OpenVINO CPU with the LATENCY hint (THROUGHPUT splits 2 cores into 2 slower single-thread streams).
    ``encode`` runs a graph compiled with the embedding output only; ``predict`` compiles, on first use, the
    graph with the heads' outputs only (the embedding path's own layers left out), or the whole graph when the
    embedding is asked for too: each caller compiles what it calls.

    ``inference_precision`` None lets OpenVINO choose (bf16 on CPUs with AVX512_BF16); "f32" forces fp32.
    """

    backend = "openvino"

    def __init__(self, directory: str | Path, threads: int | None = None, inference_precision: str | None = None,
                 measured: CpuPath | None = None):
        self.inference_precision = inference_precision
        self.measured = measured  # the export probe's choice, whose batching encode / predict use by default
        super().__init__(directory, threads)

    def batching(self, call: str) -> tuple[int, int | None]:
        return self.measured.batching(call) if self.measured else super().batching(call)

    def _load(self, graph: Path) -> None:
        import openvino as ov

        self._config: dict = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self.threads}
        if self.inference_precision:
            self._config["INFERENCE_PRECISION_HINT"] = self.inference_precision
        self._graph, self._request, self._heads_request = graph, None, None
        try:
            self._core = ov.Core()
            self._model = self._core.read_model(str(graph))
            check_outputs(graph, [port.get_any_name() for port in self._model.outputs], self.output_names)
            # encode() needs no head: a graph with only the embedding output lets OpenVINO drop every head (the
            # NER convolution runs over every token); the heads' or the whole graph on the first predict() needing it.
            needed = [p for p in self._model.get_parameters() if p.get_friendly_name() in INPUT_NAMES]
            embedding_only = ov.Model([self._model.output("sentence_embedding")], needed)
            compiled = self._core.compile_model(embedding_only, "CPU", self._config)
        except MtstError:
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line messages
            raise MtstError(f"cannot load {graph}: {first_line(exc)}; the file looks corrupt, export again") from exc
        self.embed_request = compiled.create_infer_request()
        self.runtime_precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # "bf16" | "f32"

    def _compile(self, model):
        try:
            return self._core.compile_model(model, "CPU", self._config)
        except Exception as exc:
            raise MtstError(f"cannot compile {self._graph}: {first_line(exc)}; export again") from exc

    def run_graph(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._request is None:
            compiled = self._compile(self._model)
            self._ports = {port.get_any_name(): port for port in compiled.outputs}
            self._request = compiled.create_infer_request()
        result = self._request.infer(feeds)
        return {name: np.array(result[self._ports[name]]) for name in self.output_names}

    def run_heads(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._heads_request is None:
            import openvino as ov

            outputs = [self._model.output(name) for name in self.head_outputs]
            self._heads_request = self._compile(ov.Model(outputs, self._model.get_parameters())).create_infer_request()
        result = self._heads_request.infer(feeds)
        return {name: np.array(result[index]) for index, name in enumerate(self.head_outputs)}

    def run_embeddings(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return np.array(self.embed_request.infer({name: feeds[name] for name in INPUT_NAMES})[0])


RUNTIMES: dict[str, type[ExportedRuntime]] = {"onnx": OnnxRuntime, "openvino": OpenVINORuntime}
