"""TensorRT: strongly typed engines from typed ONNX (10.x and 11.x alike) and a pycuda runtime.

Nothing here imports tensorrt or pycuda at module load; `api.tensorrt()` and `cuda.driver()` do, on first use,
and raise MissingDependency naming the `tensorrt` extra when they are absent.
"""
