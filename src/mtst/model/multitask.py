"""MultiTaskModel: one shared encoder, a pooling step and any number of named task heads.

Feature keys along the data flow, the same everywhere in mtst:
    input_ids, attention_mask, word_ids   (B, T)     from tokenization (word_ids: -1 = no word)
    shared_states                         (B, T, H)  optional input: the branch's shared bottom, precomputed
    token_embeddings                      (B, T, H)  the task path's token states (padding zeroed)
    task_embedding                        (B, H)     the task path pooled (L2-normalised when configured)
    sentence_embedding                    (B, H)     the embedding path pooled: what ``encode`` returns
Without a task branch both paths are the encoder itself and the two pooled vectors are one tensor. With
one (``branch_at``, mtst.model.branch) or a side network (``side_reduction``, mtst.model.side) the heads read
it, the embedding stays the backbone's.
Heads read ``token_embeddings`` or ``task_embedding`` (zero-shot: ``sentence_embedding``): one forward pass.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from mtst.errors import MtstError
from mtst.model import cpu_setup
from mtst.model.branch import TaskBranch, check_layerwise
from mtst.model.config import EncoderConfig, HeadConfig, ModelConfig
from mtst.model.cpu_paths import CpuPath
from mtst.model.cpu_probe import probe
from mtst.model.devices import resolve_device
from mtst.model.encoder import Encoder, load_backbone, resolve_model_path, save_backbone
from mtst.model.onednn import cpu_kernels, kernels_from_environment, use_onednn
from mtst.model.pooling import Pooling
from mtst.model.predictor import Predictor, TorchRuntime, check_tasks
from mtst.model.side import SideNetwork, backbone_states
from mtst.model.storage import read_model_dir, save_model_dir
from mtst.model.tasks import PairObjective, task_type
from mtst.model.tokenization import TextTokenizer
from mtst.model.word_shapes import is_uncased

WORD_SHAPE_CHOICES = ("off", "on", "auto")
WORD_SHAPE_DIM = 16  # the shape embedding's width when a head reads word shapes


def _on_torch(method):
    """A Predictor method as a MultiTaskModel method, with its signature and docstring: run on this model."""

    @functools.wraps(method)
    def on_model(model: MultiTaskModel, *args, **kwargs):
        predictor = Predictor(TorchRuntime(model))
        predictor.similarity_fn_name = model.similarity_fn_name
        return method(predictor, *args, **kwargs)

    return on_model


class MultiTaskModel(nn.Module):
    """The single owner of the shared encoder; heads never hold it."""

    def __init__(self, encoder: Encoder, tokenizer: PreTrainedTokenizerBase, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = encoder
        # torch's kernels unless MTST_ONEDNN=1 (see set_cpu_kernels); a branch below copies the layers as they are
        use_onednn(self.encoder, enabled=kernels_from_environment() == "onednn")
        self.cpu_path = CpuPath(kernels=cpu_kernels(self.encoder))  # how CPU inference runs (use_cpu_path)
        self.cpu_path_source = "default"  # or "requested", "cached", "measured" (mtst.model.cpu_paths)
        self.branch: TaskBranch | None = None
        if config.encoder.branch_at is not None:
            check_layerwise(self.encoder)
            shape = config.encoder  # a copy of the backbone's top, maybe slimmer (mtst.model.branch)
            self.branch = TaskBranch(self.encoder, shape.branch_at, shape.branch_layers, shape.branch_intermediate_size,
                                     shape.branch_attention_heads)
            self.encoder.requires_grad_(False)  # the embedding path never trains
        reduction = config.encoder.side_reduction  # or a side network beside the frozen backbone (mtst.model.side)
        self.side = None if reduction is None else SideNetwork(self.encoder, reduction)  # checks layerwise too
        if self.side is not None:
            self.encoder.requires_grad_(False)  # the backbone never trains beside a side network
        self.backbone_sha256 = encoder.fingerprint()  # the encoder as loaded: save() can tell if it changed
        self.pooling = Pooling(config.encoder.pooling)
        self.heads = nn.ModuleDict()  # the tasks predict() answers
        self.objectives: dict[str, PairObjective] = {}  # pair tasks: they train the embedding, predict nothing
        for name, head_config in config.heads.items():
            self._build_task(name, head_config)
        self.tokenizer = TextTokenizer(tokenizer, config.encoder.max_seq_length)
        self.tokenizer.word_shapes = any(head.word_shape_dim for head in config.heads.values())
        self.max_tokens: int | None = None  # padded tokens per inference batch (None: batch_size only)
        self.eval()

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_backbone(cls, backbone: str | Path | None = None, pooling: str | None = None,
                      normalize: bool | None = None, max_seq_length: int | None = None,
                      branch_at: int | None = None, precision: str = "auto",
                      side_reduction: int | None = None, device: str | None = None,
                      *, embedding_max_seq_length: int | None = None, branch_layers: int | None = None,
                      branch_intermediate_size: int | None = None,
                      branch_attention_heads: int | None = None) -> MultiTaskModel:
        """A model without heads on a backbone: a local directory or a model id in the local Hugging Face cache
        (default: all-MiniLM-L6-v2 from its package), on ``device`` (None: the CPU; "auto": CUDA, MPS, CPU).

        Unset options follow the backbone's own sentence-transformers settings. ``branch_at`` k gives the
        heads a trainable copy of layers k+1..L while the embedding keeps the backbone's (mtst.model.branch);
        ``side_reduction`` r a side network of width H / r beside the frozen backbone instead (mtst.model.side).
        ``branch_layers`` / ``branch_intermediate_size`` / ``branch_attention_heads`` make the branch slimmer
        (fewer layers, narrower FFNs, fewer attention heads).
        ``precision`` "auto" | "fp32" | "bf16": how CPU inference runs (see ``use_precision``).
        ``encode`` reads up to the backbone's own limit even when the heads' ``max_seq_length`` is shorter, unless
        ``embedding_max_seq_length`` asks for another limit (``mtst encode --max-seq-length`` does).
        """
        source = None if backbone in (None, "") else resolve_model_path(backbone)  # a directory or a cached id
        encoder, tokenizer, settings = load_backbone(source)
        pooling = pooling or settings.pooling
        Pooling(pooling)  # validates the name before anything else happens
        max_seq_length = settings.max_seq_length if max_seq_length is None else max_seq_length
        if embedding_max_seq_length is None and max_seq_length < settings.max_seq_length:
            embedding_max_seq_length = settings.max_seq_length  # heads train shorter; the embedding stays exact
        config = ModelConfig(encoder=EncoderConfig(
            pooling=pooling,
            normalize=settings.normalize if normalize is None else normalize,
            max_seq_length=max_seq_length, embedding_max_seq_length=embedding_max_seq_length,
            hidden_size=encoder.hidden_size,
            backbone="default" if source is None else str(source.resolve()),
            branch_at=branch_at, side_reduction=side_reduction, branch_layers=branch_layers,
            branch_intermediate_size=branch_intermediate_size, branch_attention_heads=branch_attention_heads,
        ))
        model = cls(encoder, tokenizer, config)
        model.use_precision(precision)
        return model if device is None else model.to(resolve_device(device))

    def add_head(self, name: str, type: str, labels: Sequence[str], hidden_dim: int | None = None,
                 dropout: float = 0.1, *, word_shape: str = "off", crf: bool = False,
                 descriptions: Sequence[str] | None = None) -> None:
        """Attach a new head: random (seed torch first), or a zero-shot head's label embeddings (``descriptions``: one
        per label; mtst.model.tasks.ZeroShotClassification). Token heads only: ``word_shape`` "on" embeds each word's
        shape beside its token state, "auto" when the backbone is uncased; ``crf`` decodes through a BIO CRF."""
        if name in self.heads:
            raise MtstError(f"task '{name}' already exists; choose another name")
        if word_shape not in WORD_SHAPE_CHOICES:
            raise MtstError(f"unknown word_shape '{word_shape}'; choose one of {', '.join(WORD_SHAPE_CHOICES)}")
        shapes = word_shape == "on" or (word_shape == "auto" and is_uncased(self.tokenizer.tokenizer))
        head_config = HeadConfig(type=type, labels=list(labels), input_dim=self.config.encoder.hidden_size,
                                 hidden_dim=hidden_dim, dropout=dropout, crf=crf, descriptions=descriptions,
                                 word_shape_dim=WORD_SHAPE_DIM if shapes else 0)
        self._build_task(name, head_config)
        task_type(type).added(self, name)
        self.config.heads = {**self.config.heads, name: head_config}
        self.tokenizer.word_shapes = any(c.word_shape_dim for c in self.config.heads.values())

    def _build_task(self, name: str, config: HeadConfig) -> None:
        kind = task_type(config.type)
        if kind.predicts:
            self.heads[name] = kind.build_head(config).train(self.training)
        else:
            self.objectives[name] = kind.build_objective(config)

    def set_cpu_kernels(self, kernels: str) -> str:
        """How the encoder's (and branch's) linear layers run at CPU inference: "torch" (``nn.Linear``, MKL's
        sgemm; the default) or "onednn" (oneDNN's matmul, GELU fused: mtst.model.onednn). Parameters, saved
        files, training, GPU and export are the same either way. Returns the kernels now in use: "torch" where
        oneDNN is not usable on this machine."""
        return cpu_setup.set_cpu_kernels(self, kernels)

    def use_precision(self, precision: str = "auto") -> CpuPath:
        """CPU inference in "fp32", "bf16" (autocast) or "auto": the path ``choose_cpu_path`` measured fastest and
        lossless for this CPU and model, when cached, else fp32. Returns the path in use (mtst.model.cpu_paths)."""
        return cpu_setup.use_precision(self, precision)

    def use_cpu_path(self, path: CpuPath) -> CpuPath:
        """Run CPU inference with ``path``'s kernels and precision; ``MTST_ONEDNN``, when set, overrides the kernels."""
        return cpu_setup.use_cpu_path(self, path)

    def choose_cpu_path(self, sentences: Sequence[str] | None = None, save: bool = True, quick: bool = False) -> dict:
        """Measure the CPU paths here (seconds; mtst.model.cpu_probe), keep the fastest that passes the parity
        gate against fp32 and (``save``) cache it for this CPU: later loads with precision "auto" start with it."""
        return probe(self, list(sentences) if sentences else None, save=save, quick=quick)

    @property
    def tasks(self) -> list[str]:
        """The tasks ``predict`` answers; pair tasks (``objectives``) only train the embedding."""
        return list(self.heads)

    # ---- forward ------------------------------------------------------------------------
    def forward(self, features: dict[str, torch.Tensor], tasks: Sequence[str] | None = None,
                labels: dict[str, torch.Tensor] | None = None, embedding: bool = True) -> dict:
        """One encoder pass, then each requested head. Returns the feature keys above + ``logits`` per task,
        and ``losses`` per task plus their sum ``loss`` when labels are given. ``embedding=False`` skips the
        embedding path's own layers when a branch makes them separate, unless a requested head reads it."""
        tasks = self._check_tasks(tasks if tasks is not None else list(labels or self.tasks))
        embedding = embedding or any(self.heads[task].reads == "sentence_embedding" for task in tasks)
        attention_mask = features["attention_mask"]
        token_states, embedding_states = self._paths(features, embedding)  # (B, T, H) each, or None
        # Zero the padding states (as the training feature cache does), so heads that look at
        # neighbouring tokens give the same logits whatever a sentence is batched with.
        token_embeddings = token_states * attention_mask[..., None].to(token_states.dtype)
        out: dict = {"token_embeddings": token_embeddings,
                     "task_embedding": self._pool(token_embeddings, attention_mask)}
        if embedding_states is token_states:
            out["sentence_embedding"] = out["task_embedding"]
        elif embedding_states is not None:
            out["sentence_embedding"] = self._pool(embedding_states, attention_mask)
        shape_ids = features.get("shape_ids")  # (B, T), only when a head reads word shapes
        out["logits"] = {task: self.heads[task](out[self.heads[task].reads], shape_ids) for task in tasks}
        if labels:
            out["losses"] = {task: self.heads[task].loss(out["logits"][task], labels[task]) for task in labels}
            out["loss"] = sum(out["losses"].values())
        return out

    def _paths(self, features: dict[str, torch.Tensor], embedding: bool):
        """(task path token states, embedding path token states): the same tensor without a branch."""
        input_ids, attention_mask = features["input_ids"], features["attention_mask"]
        if self.side is not None:  # the backbone once, every state kept: its top is the embedding path's
            states = backbone_states(self.encoder, input_ids, attention_mask)
            return self.side(states, attention_mask), states[-1] if embedding else None
        if self.branch is None:
            states = self.encoder(input_ids, attention_mask)
            return states, states
        shared = features.get("shared_states")  # the training cache ran the frozen bottom already
        if shared is None:
            shared = self.shared_states(input_ids, attention_mask)
        task_states = self.branch(shared, self.encoder.layer_mask(attention_mask, shared))
        if not embedding:
            return task_states, None
        return task_states, self.encoder(input_ids, attention_mask, hidden=shared, layers=slice(self.branch.at, None))

    def shared_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The branch's shared bottom: the states after layer ``branch_at`` (B, T, H)."""
        return self.encoder(input_ids, attention_mask, layers=slice(0, self.branch.at))

    def embed(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The embedding path alone, (B, H): what pair tasks train. From ``shared_states`` when a branch's
        training cache gives them, else from the input ids."""
        input_ids, attention_mask = features["input_ids"], features["attention_mask"]
        shared = features.get("shared_states")
        if self.branch is not None and shared is not None:
            states = self.encoder(input_ids, attention_mask, hidden=shared, layers=slice(self.branch.at, None))
        else:
            states = self.encoder(input_ids, attention_mask)
        return self._pool(states * attention_mask[..., None].to(states.dtype), attention_mask)

    def _pool(self, token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.pooling(token_states, attention_mask)  # (B, H)
        return nn.functional.normalize(pooled, p=2, dim=-1) if self.config.encoder.normalize else pooled

    def tuned_encoder(self) -> nn.Module:
        """The encoder part the task heads fine-tune: the side network, else the branch, else the encoder."""
        return next(part for part in (self.side, self.branch, self.encoder) if part is not None)

    def _check_tasks(self, tasks: Sequence[str]) -> list[str]:
        return check_tasks(tasks, self.heads, self.config)  # the one unknown-task / pair-task error

    # ---- inference: the one surface of mtst.model.predictor, on torch ----------------------
    encode = _on_torch(Predictor.encode)  # sentence-transformers' keywords; one string -> one (H,) vector
    predict = _on_torch(Predictor.predict)
    similarity = _on_torch(Predictor.similarity)  # torch tensors, as in sentence-transformers
    similarity_pairwise = _on_torch(Predictor.similarity_pairwise)
    similarity_fn_name = "cosine"  # what similarity() computes: cosine, dot, euclidean or manhattan (as in ST)

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: str | Path, include_encoder: bool = True, dtype: str = "float32") -> Path:
        """Write a model directory atomically (layout: mtst.model.storage).

        ``include_encoder=False`` references the untouched backbone instead of copying it (an error if the
        encoder trained); ``dtype`` "bfloat16" / "float16" halves the stored branch and head weights.
        """
        if not include_encoder and self.encoder.fingerprint() != self.backbone_sha256:
            raise MtstError("the encoder changed since it was loaded (it trained), so include_encoder=False would "
                            "lose it; save the encoder (include_encoder=True)")
        config = self.config.model_copy(deep=True)
        config.encoder.backbone_sha256 = None if include_encoder else self.backbone_sha256  # the reference
        tensors = {part: module.state_dict() for part, module in self._stored_parts().items()}
        return save_model_dir(Path(path), config, tensors, self._write_encoder if include_encoder else None, dtype)

    def _stored_parts(self) -> dict[str, nn.Module]:
        parts = {"heads": self.heads, "branch": self.branch, "side": self.side}
        return {name: part for name, part in parts.items() if part is not None}

    def _write_encoder(self, directory: Path) -> None:
        save_backbone(directory, self.encoder, self.tokenizer.tokenizer, self.config.encoder)

    @classmethod
    def load(cls, path: str | Path | None = None, backbone: str | Path | None = None,
             precision: str = "auto", device: str | None = None) -> MultiTaskModel:
        """Load a model directory written by ``save`` (default: the trained model shipped with mtst), or a model id
        whose snapshot is in the local Hugging Face cache, on ``device`` (None: the CPU; "auto": CUDA, MPS, CPU).

        ``backbone``: where the backbone is, for a directory that references one not found where it was.
        ``precision`` "auto" | "fp32" | "bf16": how CPU inference runs (see ``use_precision``).
        """
        path = None if path in (None, "") else resolve_model_path(path)  # a directory, or an id in the HF cache
        stored = read_model_dir(path, backbone)  # the config, where the encoder is, head (and branch) tensors
        encoder, tokenizer, _ = load_backbone(stored.encoder_source)
        stored.check_encoder(encoder.hidden_size)
        model = cls(encoder, tokenizer, stored.config)
        stored.check_backbone(model.backbone_sha256)
        stored.load_into(model._stored_parts())
        model.use_precision(precision)
        return model.eval() if device is None else model.eval().to(resolve_device(device))

