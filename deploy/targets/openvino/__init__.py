"""OpenVINO on CPU: typed ONNX → IR (.xml + .bin); INT8 from deploy's U8S8 QDQ ONNX, FP16 in BF16/FP16 per CPU."""

from deploy.targets.openvino.target import OpenVino

__all__ = ["OpenVino"]
