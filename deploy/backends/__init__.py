"""Runners: one interface over eager PyTorch, ONNX Runtime and (later) TensorRT."""

from deploy.backends.base import Runner, TensorMeta

__all__ = ["Runner", "TensorMeta"]
