"""TensorRT: strongly typed engines from typed ONNX (10.x and 11.x alike) and a pycuda runtime.

Nothing here imports tensorrt or pycuda at module load: `api.trt` imports TensorRT on first attribute access and
the runner imports pycuda when it starts; both raise MissingDependency naming the `tensorrt` extra when absent.
"""

from deploy.targets.tensorrt.target import TensorRT

__all__ = ["TensorRT"]
