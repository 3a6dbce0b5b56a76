"""The reference an artifact is judged and timed against: eager PyTorch for a zoo model (the same architecture and
weights its sidecar records), the imported FP32 ONNX on ONNX Runtime for a model `deploy import` brought in."""

from __future__ import annotations

from pathlib import Path

from deploy.backends.base import Runner
from deploy.errors import ArtifactError, BadInput
from deploy.files import sha256_file
from deploy.harness.eager import eager_runner
from deploy.imported import NO_MODULE, is_imported, reimport_command
from deploy.sidecar import Sidecar


def reference_runner(sidecar: Sidecar, *, device: str = "cpu", threads: int | None = None) -> Runner:
    """The FP32 reference of `sidecar`'s model on `device`; `threads` sets ONNX Runtime's intra-op threads (eager
    PyTorch takes torch's global setting, as bench sets it)."""
    if not is_imported(sidecar):
        return eager_runner(sidecar, device=device)
    if device != "cpu":
        raise BadInput(
            f"{sidecar.model}: no {device} reference ({NO_MODULE}; its reference runs on ONNX Runtime's CPU provider)",
            hint="time GPU artifacts of an imported model with `deploy bench --no-eager`",
        )
    from deploy.targets.onnxruntime.runner import OrtRunner

    return OrtRunner(reference_onnx(sidecar), intra_op_threads=threads)


def reference_onnx(sidecar: Sidecar) -> Path:
    """The imported FP32 ONNX an imported model's artifacts are judged against, refused when it is gone or is no
    longer the file that was imported (every verdict would compare with something else)."""
    detail = sidecar.weights.detail
    path, digest = detail.get("path"), detail.get("sha256")
    fix = f"re-import it ({reimport_command(sidecar)}), then rebuild with `deploy build {sidecar.model}`"
    if not isinstance(path, str) or not isinstance(digest, str):
        raise ArtifactError(f"the sidecar of {sidecar.model} records no path and sha256 of its imported ONNX", hint=fix)
    reference = Path(path)
    if not reference.is_file():
        raise ArtifactError(
            f"{sidecar.model}: its reference, the imported FP32 ONNX {reference}, does not exist", hint=fix
        )
    if sha256_file(reference) != digest:
        raise ArtifactError(
            f"{sidecar.model}: its reference {reference} has changed since it was imported (sha256 mismatch)",
            hint=fix,
        )
    return reference
