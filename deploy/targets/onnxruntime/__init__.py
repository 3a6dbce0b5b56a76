"""ONNX Runtime on CPU: the typed ONNX is the artifact (no compile step); INT8 is the U8S8 QDQ with 7-bit weights."""

from deploy.targets.onnxruntime.target import OnnxRuntime

__all__ = ["OnnxRuntime"]
