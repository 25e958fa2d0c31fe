"""mtst inside the tools users already run: Ray Data for bulk work beyond one machine (``ray_data``: the
``map_batches`` callable class; ``ray_sources``: numbered, chunked inputs; ``ray_jobs``: ``mtst encode/predict
--engine ray``) and native LangChain / LlamaIndex embedding classes that run the model in-process.

Each module imports its third-party library only when it is used, so ``import mtst`` never needs them. May import
the inference and model packages; the CLI imports this package, nothing else does.
"""
