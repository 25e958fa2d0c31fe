"""The parts of an exported graph that a call needs: ONNX Runtime runs every node of a session's graph whatever
outputs are fetched, so its runtime loads the part cut at the outputs a call returns (mtst.inference.runtimes)."""

from __future__ import annotations

from pathlib import Path

from mtst.errors import MtstError
from mtst.inference.export import INPUT_NAMES


def check_outputs(graph: Path, found: list[str], expected: list[str]) -> None:
    missing = [name for name in expected if name not in found]
    if missing:
        raise MtstError(f"{graph} has no output '{missing[0]}' that export.json promises; export the model again")


def encoder_graph(graph: Path, outputs: list[str]) -> bytes:
    """The part of an exported ONNX graph that computes ``sentence_embedding`` from the inputs: no head's node
    or weight (``encode`` loads this instead of the whole graph)."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(str(graph))
    check_outputs(graph, [o.name for o in model.graph.output], outputs)
    return Extractor(model).extract_model(INPUT_NAMES, ["sentence_embedding"]).SerializeToString()


def heads_graph(graph: Path, inputs: list[str], outputs: list[str]) -> bytes:
    """The part of an exported ONNX graph that computes the heads' ``outputs`` from ``inputs``: no node that only
    the embedding needs (with a task branch, the embedding path's copy of the top layers)."""
    import onnx
    from onnx.utils import Extractor

    return Extractor(onnx.load(str(graph))).extract_model(inputs, outputs).SerializeToString()
