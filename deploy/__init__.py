"""deploy: classic CNNs from PyTorch to verified, fast inference.

The Python API (each returns the dataclass the matching command renders)::

    import deploy

    exported = deploy.export("resnet18", weights="ckpt.pt", labels="labels.txt")  # your fine-tune
    built = deploy.build("resnet18", targets=["onnxruntime"])                      # FP32, FP16, INT8, judged
    report = deploy.verify(*(a.path for a in built.artifacts))                    # truthy when all passed
    with deploy.load(built.artifacts[-1].path) as model:
        print(model.predict(["cat.jpg"])[0].predictions[0].label)

Also `deploy.import_onnx` (an ONNX classifier made elsewhere), `deploy.bench`, `deploy.run_pipeline`, and
`deploy.export(module, name=..., input_size=...)` for your own `nn.Module`. Importing this package is cheap: torch,
onnx and onnxruntime load only when one of these functions first runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deploy.errors import DeployError

__version__ = "0.1.0"

_API = ("export", "import_onnx", "build", "verify", "bench", "run_pipeline", "load")

if TYPE_CHECKING:
    from deploy.api import bench, build, export, import_onnx, load, run_pipeline, verify


def __getattr__(name: str) -> Any:
    if name in _API:
        from deploy import api

        return getattr(api, name)
    raise AttributeError(f"module 'deploy' has no attribute {name!r}")


__all__ = ["DeployError", "__version__", "bench", "build", "export", "import_onnx", "load", "run_pipeline", "verify"]
