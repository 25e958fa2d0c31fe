"""Text -> outputs: tokenization, the encoder, pooling, task heads, the multi-task model, its config and
its directory format on disk.

Owns everything needed to load a model and run it in torch. May import only ``mtst.errors``,
``mtst.files`` and ``mtst.progress``; nothing from data, training, inference, serving or the CLI.
"""
