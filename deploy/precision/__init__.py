"""Precision baked into the ONNX: FP16 by ModelOpt AutoCast, INT8 by explicit Q/DQ from ModelOpt ONNX PTQ.

TensorRT 11 removed the FP16/INT8 builder flags and calibrators; a typed ONNX built as a strongly typed network is
the one path that serves TensorRT 10.x and 11.x, and ONNX Runtime runs the same file on any CPU.
"""
