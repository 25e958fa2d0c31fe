"""``mtst serve``'s HTTP app: a FastAPI factory whose handlers validate, queue into the micro-batcher and
format (``app``), its edge (auth, request ids, access log, Prometheus metrics, JSON encoding: ``edge``) and
the static playground.

May import the model and inference packages; never training or the CLI.
"""
