"""The eager PyTorch reference for an artifact of a zoo model: the same architecture and weights its sidecar records.

Judging and timing ask deploy.harness.reference for the reference, which is this for zoo models and the imported
FP32 ONNX for models brought in with `deploy import` or exported from your own module (no module to rebuild)."""

from __future__ import annotations

from pathlib import Path

from deploy.backends.base import TensorMeta
from deploy.backends.torch_runner import TorchRunner
from deploy.errors import ArtifactError, BadInput
from deploy.files import sha256_file
from deploy.imported import has_onnx_reference, no_module
from deploy.sidecar import Sidecar


def eager_runner(sidecar: Sidecar, *, device: str = "cpu", compiled: bool = False, fp16: bool = False) -> TorchRunner:
    """`compiled`: the same module through torch.compile (inductor), compiled lazily on the first calls.
    `fp16`: the module in float16, every layer computing in FP16 (PyTorch has FP16 CPU kernels)."""
    if has_onnx_reference(sidecar):  # never rebuilt from the zoo under its name: it is not that architecture
        raise BadInput(
            f"no eager PyTorch run of {sidecar.model}: {no_module(sidecar)}",
            hint="its reference is its FP32 ONNX on ONNX Runtime; `deploy verify` and `deploy bench` use it",
        )
    _check_checkpoint(sidecar)
    import torch

    from deploy.customization import Customization
    from deploy.zoo import get_spec, load_model

    head = None if sidecar.head is None else Customization(num_classes=sidecar.head.num_classes)
    module = load_model(get_spec(sidecar.model), sidecar.weights.argument, head).module
    if compiled:
        module = torch.compile(module.eval())  # type: ignore[assignment]
    inputs = (TensorMeta(sidecar.inputs[0].name, sidecar.inputs[0].shape, "float32"),)
    output_names = [o.name for o in sidecar.outputs]
    dtype = torch.float16 if fp16 else torch.float32
    return TorchRunner(module, inputs=inputs, output_names=output_names, device=device, dtype=dtype)


def _check_checkpoint(sidecar: Sidecar) -> None:
    """The checkpoint an export was made from is the reference of all its artifacts: refused once it is gone or
    was overwritten (a training run that kept saving `best.pt` would otherwise judge INT8 against newer weights)."""
    recorded = sidecar.weights.detail.get("sha256")
    if sidecar.weights.kind != "checkpoint" or not isinstance(recorded, str):
        return  # not a checkpoint, or exported before checkpoints were pinned by hash
    path = Path(sidecar.weights.argument)
    remake = f"re-export from the checkpoint you want ({sidecar.export_command()}), then rebuild"
    if not path.is_file():
        raise ArtifactError(f"{sidecar.model}: its reference checkpoint {path} does not exist", hint=remake)
    if sha256_file(path) != recorded:
        raise ArtifactError(
            f"{sidecar.model}: checkpoint {path} has changed since the export (sha256 mismatch), so it is no longer "
            "the reference its artifacts were made from",
            hint=remake,
        )
