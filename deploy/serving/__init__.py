"""Serving beyond one process: model repositories for NVIDIA Triton Inference Server."""
