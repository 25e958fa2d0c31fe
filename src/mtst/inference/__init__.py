"""Running a trained model outside training: export to ONNX / OpenVINO (fp32, int8), the exported runtimes
and backend choice, parity and label-agreement checks, micro-batching, and resumable bulk encoding.

May import the model package; never training, serving or the CLI.
"""
