"""Labelled examples: data-source descriptions, readers per file format, deterministic splits and label
sets, tokenization of a task's examples once (labels aligned to sub-tokens), and single-task batch sampling.

May import the model package (the tokenizer and the head registry); nothing from training, inference,
serving or the CLI.
"""
