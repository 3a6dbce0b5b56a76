"""The model.py files `deploy triton` copies into a repository for Triton's Python backend, byte for byte.

Each imports nothing from deploy: the server's Python (Triton's stub process) needs only NumPy, Pillow and, for the
ONNX Runtime model, onnxruntime. What differs per model (preprocessing, top-k, threads) is read from config.pbtxt's
`parameters` and the model folder at load time, so the code itself is the same file for every model.
"""
