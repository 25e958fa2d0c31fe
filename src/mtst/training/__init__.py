"""The training recipe and its parts: the YAML config, optimiser groups with layer-wise LR decay,
freezing and gradual unfreezing, loss weighting, the embedding anchor, checkpoints, data parallelism,
the frozen-encoder feature cache, evaluation metrics and model selection.

May import the model and data packages; never inference, serving or the CLI.
"""
