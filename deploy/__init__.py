"""deploy: classic CNNs from PyTorch to verified, fast inference.

Importing this package is cheap: torch, onnx and onnxruntime load only when a stage that needs them runs.
"""

from deploy.errors import DeployError

__version__ = "0.1.0"

__all__ = ["DeployError", "__version__"]
