"""The reference an artifact is judged and timed against: eager PyTorch for a zoo model (the same architecture and
weights its sidecar records); the FP32 ONNX on ONNX Runtime for a model without a module deploy can rebuild (one
`deploy import` brought in, or your own nn.Module exported from Python)."""

from __future__ import annotations

from pathlib import Path

from deploy.backends.base import Runner
from deploy.errors import ArtifactError, BadInput
from deploy.files import sha256_file
from deploy.harness.eager import eager_runner
from deploy.imported import IMPORTED_KIND, has_onnx_reference, no_module, remake_hint
from deploy.sidecar import Sidecar


def reference_runner(sidecar: Sidecar, *, device: str = "cpu", threads: int | None = None) -> Runner:
    """The FP32 reference of `sidecar`'s model on `device`; `threads` sets ONNX Runtime's intra-op threads (eager
    PyTorch takes torch's global setting, as bench sets it)."""
    if not has_onnx_reference(sidecar):
        return eager_runner(sidecar, device=device)
    if device != "cpu":
        raise BadInput(
            f"{sidecar.model}: no {device} reference ({no_module(sidecar)}; its FP32 ONNX runs on ONNX Runtime's "
            "CPU provider)",
            hint="time GPU artifacts of this model with `deploy bench --no-eager`",
        )
    from deploy.targets.onnxruntime.runner import OrtRunner

    return OrtRunner(reference_onnx(sidecar), intra_op_threads=threads)


def reference_onnx(sidecar: Sidecar) -> Path:
    """The FP32 ONNX (imported, or exported from your module) that the model's artifacts are judged against, refused
    when it is gone or is no longer the file that was recorded (every verdict would compare with something else)."""
    detail = sidecar.weights.detail
    path, digest = detail.get("path"), detail.get("sha256")
    fix = f"{remake_hint(sidecar)}, then rebuild with `deploy build {sidecar.model}`"
    if not isinstance(path, str) or not isinstance(digest, str):
        raise ArtifactError(f"the sidecar of {sidecar.model} records no path and sha256 of its FP32 ONNX", hint=fix)
    reference = Path(path)
    if not reference.is_file():
        raise ArtifactError(f"{sidecar.model}: its reference, the FP32 ONNX {reference}, does not exist", hint=fix)
    if sha256_file(reference) != digest:
        made = "imported" if sidecar.weights.kind == IMPORTED_KIND else "exported"
        raise ArtifactError(
            f"{sidecar.model}: its reference {reference} has changed since it was {made} (sha256 mismatch)", hint=fix
        )
    return reference
