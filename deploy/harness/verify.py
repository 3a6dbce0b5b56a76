"""`deploy verify`: each artifact against its model's FP32 reference on held-out images, with accuracy when labelled.

The reference is eager PyTorch for a zoo model, and the imported FP32 ONNX on ONNX Runtime for a model brought in
with `deploy import` (deploy.harness.reference)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from deploy.backends.base import Runner
from deploy.errors import BadInput, first_line
from deploy.files import Staging
from deploy.harness.checks import check_int, missing_artifact_hint
from deploy.harness.compare import DEFAULT_TOLERANCES, OutputComparison, ParityReport, Tolerance, check_tolerances
from deploy.harness.eager import eager_runner
from deploy.harness.heldout import HeldOutSet, held_out_set
from deploy.harness.reference import reference_runner
from deploy.imported import EAGER_REFERENCE, has_onnx_reference, no_module, reference_description, require_sidecar
from deploy.sidecar import Sidecar, load_sidecar, sidecar_path, withdraw
from deploy.targets import check_runnable, runner_for, target_for

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
BATCH = 8


@dataclass(frozen=True)
class ParityCheck:
    """How a freshly built artifact is judged before it is published: held-out images and tolerance overrides."""

    images: Path | None = None
    count: int | None = None
    overrides: dict[str, float | None] = field(default_factory=dict)  # atol / rtol / min_cosine / min_top1

    def __post_init__(self) -> None:
        check_judging(self.count, self.overrides)


@dataclass(frozen=True)
class VerifyConfig:
    artifacts: tuple[Path, ...]
    images: Path | None = None
    count: int | None = None
    overrides: dict[str, float | None] = field(default_factory=dict)  # atol / rtol / min_cosine / min_top1

    def __post_init__(self) -> None:
        check_judging(self.count, self.overrides)


def check_judging(count: int | None, overrides: Mapping[str, float | None]) -> None:
    """--count and the tolerance overrides, refused before any artifact is built or run."""
    if count is not None:
        check_int("--count", count, low=1, example=100)
    check_tolerances(overrides)


@dataclass(frozen=True)
class ArtifactVerdict:
    json_derived: ClassVar[tuple[str, ...]] = ("passed", "failures")
    artifact: str
    model: str
    precision: str
    backend: str
    tolerance: Tolerance
    parity: ParityReport
    samples: int
    eager_accuracy: float | None  # the reference's accuracy (eager PyTorch, or an imported model's FP32 ONNX)
    artifact_accuracy: float | None
    # FP16 artifacts: tensors stored in FP16 whose FP32 values exceed 65504 on the calibration images (from the
    # build's activation scan; a GPU would produce inf there), and the eager module run in FP16 arithmetic against
    # FP32 — what ONNX Runtime's CPU provider, which computes FP16 graphs in FP32, cannot show.
    fp16_overflow: tuple[str, ...] = ()
    eager_fp16: OutputComparison | None = None
    reference: str = EAGER_REFERENCE  # what it was judged against (deploy.imported.reference_description)

    @property
    def passed(self) -> bool:
        return self.parity.passed and not self.fp16_overflow

    @property
    def failures(self) -> list[str]:
        """Why it failed, one line per criterion (parity bounds of the first output, FP16 overflows)."""
        return list(self.parity.outputs[0].failures) + [f"FP16 overflow in {name}" for name in self.fp16_overflow]

    def __bool__(self) -> bool:
        return self.passed


@dataclass(frozen=True)
class VerifyResult:
    json_derived: ClassVar[tuple[str, ...]] = ("passed",)
    verdicts: tuple[ArtifactVerdict, ...]
    images: str
    labelled: bool

    @property
    def passed(self) -> bool:
        return all(self.verdicts)


def tolerance_for(precision: str, weights_kind: str, overrides: dict[str, float | None]) -> Tolerance:
    key = "int8" if precision.startswith("int8") else precision
    if key != "fp32" and weights_kind == "random":
        key = f"{key}-random"
    return dataclasses.replace(DEFAULT_TOLERANCES[key], **{k: v for k, v in overrides.items() if v is not None})


def verify(config: VerifyConfig, *, progress: Progress | None = None) -> VerifyResult:
    say = progress or (lambda _message: None)
    if not config.artifacts:
        raise BadInput("no artifacts to verify", hint="pass engines/MODEL.PRECISION.onnx files or export/MODEL.onnx")
    sidecars = [(path, _artifact_sidecar(path)) for path in config.artifacts]
    for path, _ in sidecars:  # a plan without TensorRT or a GPU: refused before the reference runs on every image
        check_runnable(path)
    check = ParityCheck(config.images, config.count, config.overrides)
    verdicts: list[ArtifactVerdict] = []
    images_source, labelled = "", False
    # One reference per model *and* weights, head and preprocessing: two fine-tunes of one architecture are judged
    # each against its own.
    for key in dict.fromkeys(sidecar.reference_key for _, sidecar in sidecars):
        group = [(path, sidecar) for path, sidecar in sidecars if sidecar.reference_key == key]
        judge = Judge(group[0][1], check, progress=say)
        verdicts.extend(judge(path, sidecar) for path, sidecar in group)
        images_source, labelled = judge.images, judge.labelled
    return VerifyResult(tuple(verdicts), images_source, labelled)


class Judge:
    """Judges artifacts of one model against its reference; the held-out set and the reference's outputs are made
    once."""

    def __init__(self, source: Sidecar, check: ParityCheck, *, progress: Progress | None = None) -> None:
        self._source = source
        self._check = check
        self._say = progress or (lambda _message: None)
        self._reference: tuple[HeldOutSet, dict[str, np.ndarray]] | None = None
        self._fp16_reference: dict[str, np.ndarray] | None = None
        self._fp16_tried = False  # PyTorch may lack an FP16 CPU kernel for this model: try once

    def __call__(self, artifact: Path, sidecar: Sidecar, *, name: str | None = None) -> ArtifactVerdict:
        """Verdict on `artifact`; a build judges it in its work folder (`name` is where it will be published)."""
        held, reference = self._reference_outputs()
        label = sidecar.label.name
        tolerance = tolerance_for(sidecar.precision_name, sidecar.weights.kind, self._check.overrides)
        against = reference_description(self._source)
        self._say(f"{sidecar.model}: verifying {label} against {against} on {len(held.arrays)} held-out images")
        with runner_for(artifact, sidecar=sidecar) as runner:
            verdict = check_runner(runner, name or str(artifact), label, tolerance, sidecar, held, reference)
        if sidecar.precision_name == "fp16" and not self._fp16_tried:
            if has_onnx_reference(self._source):
                self._say(f"{sidecar.model}: no FP16-arithmetic reference ({no_module(self._source)})")
            else:
                self._say(f"{sidecar.model}: eager PyTorch in FP16 arithmetic (how FP16 compute moves this network)")
                self._fp16_reference = eager_fp16_outputs(self._source, held)
            self._fp16_tried = True
        return with_fp16_checks(verdict, sidecar, reference, self._fp16_reference)

    @property
    def images(self) -> str:
        return self._reference_outputs()[0].source

    @property
    def labelled(self) -> bool:
        return self._reference_outputs()[0].labels is not None

    def _reference_outputs(self) -> tuple[HeldOutSet, dict[str, np.ndarray]]:
        if self._reference is None:
            held = held_out_set(self._source, images=self._check.images, count=self._check.count)
            self._say(
                f"{self._source.model}: {reference_description(self._source)} reference on {len(held.arrays)} "
                f"held-out images ({held.source})"
            )
            self._reference = held, eager_outputs(self._source, held)
        return self._reference


def verdict_record(verdict: ArtifactVerdict, images: str) -> dict[str, Any]:
    """What a sidecar keeps of a verdict: enough to tell, without rerunning, whether and how the artifact passed."""
    out = verdict.parity.outputs[0]
    return {
        "passed": verdict.passed,
        "reference": verdict.reference,
        "images": images,
        "samples": verdict.samples,
        "tolerance": dataclasses.asdict(verdict.tolerance),
        "cosine_min": out.cosine_min,
        "cosine_mean": out.cosine_mean,
        "top1_agreement": out.top1_agreement,
        "max_abs": out.max_abs,
        "eager_accuracy": verdict.eager_accuracy,
        "artifact_accuracy": verdict.artifact_accuracy,
        "failures": verdict.failures,
        "eager_fp16_cosine_min": None if verdict.eager_fp16 is None else verdict.eager_fp16.cosine_min,
    }


def settle_verdict(path: Path, verdict: ArtifactVerdict, images: str) -> bool:
    """Record a passing verdict in the artifact's sidecar; withdraw (delete) an artifact that failed. True if kept.

    The same rule as `deploy build`: an artifact that failed parity is never left looking valid.
    """
    sidecar = load_sidecar(path)
    if not verdict.passed:
        withdraw(path)
        return False
    with Staging() as staging:
        updated = dataclasses.replace(sidecar, parity=verdict_record(verdict, images))
        staging.path_for(sidecar_path(path)).write_text(updated.to_json(), encoding="utf-8")
        staging.commit()
    return True


def _artifact_sidecar(path: Path) -> Sidecar:
    if not path.is_file():
        raise BadInput(f"artifact {path} does not exist", hint=missing_artifact_hint(path))
    target_for(path)
    return require_sidecar(path)


def eager_outputs(sidecar: Sidecar, held: HeldOutSet, *, fp16: bool = False) -> dict[str, np.ndarray]:
    """The reference's outputs on the held-out set: eager PyTorch (in FP16 arithmetic with `fp16`), or an imported
    model's FP32 ONNX on ONNX Runtime (which has no FP16 variant: see eager_fp16_outputs)."""
    with eager_runner(sidecar, fp16=True) if fp16 else reference_runner(sidecar) as runner:
        return run_held_out(runner, sidecar, held)


def eager_fp16_outputs(sidecar: Sidecar, held: HeldOutSet) -> dict[str, np.ndarray] | None:
    """Eager outputs in FP16 arithmetic, or None where PyTorch has no FP16 CPU kernel for a layer of this model
    (measured: AlexNet's adaptive average pooling has none in torch 2.14), or for an imported model (no module)."""
    if has_onnx_reference(sidecar):
        log.info("%s: no eager FP16 reference (%s)", sidecar.model, no_module(sidecar))
        return None
    try:
        return eager_outputs(sidecar, held, fp16=True)
    except (NotImplementedError, RuntimeError) as exc:
        log.warning("%s: no eager FP16 reference on this CPU (%s)", sidecar.model, first_line(exc))
        return None


def run_held_out(runner: Runner, sidecar: Sidecar, held: HeldOutSet) -> dict[str, np.ndarray]:
    name = sidecar.inputs[0].name
    batch = sidecar.batch.max if not sidecar.batch.dynamic else min(BATCH, sidecar.batch.max)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(held.arrays), batch):
        chunk = held.arrays[start : start + batch]
        real = len(chunk)
        if not sidecar.batch.dynamic and real < batch:  # a static engine takes only its own batch size
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - real, axis=0)])
        for out, value in runner.infer({name: chunk}).items():
            parts.setdefault(out, []).append(value[:real])
    return {out: np.concatenate(values) for out, values in parts.items()}


def with_fp16_checks(
    verdict: ArtifactVerdict,
    sidecar: Sidecar,
    reference: dict[str, np.ndarray],
    fp16_reference: dict[str, np.ndarray] | None,
) -> ArtifactVerdict:
    """An FP16 artifact's verdict with its recorded activation scan and the eager FP16 comparison added."""
    if sidecar.precision_name != "fp16":
        return verdict
    from deploy.harness.compare import compare_outputs

    scan = (sidecar.precision.details.get("activation_scan") if sidecar.precision else None) or {}
    overflow = tuple(str(peak["tensor"]) for peak in scan.get("overflow", []))
    eager_fp16 = None
    if fp16_reference is not None:
        tolerance = tolerance_for("fp16", sidecar.weights.kind, {})
        comparison = compare_outputs(
            reference, fp16_reference, tolerance, reference_name="torch", candidate_name="torch-fp16"
        )
        eager_fp16 = comparison.outputs[0]
    return dataclasses.replace(verdict, fp16_overflow=overflow, eager_fp16=eager_fp16)


def check_runner(
    runner: Runner,
    artifact: str,
    label: str,
    tolerance: Tolerance,
    sidecar: Sidecar,
    held: HeldOutSet,
    reference: dict[str, np.ndarray],
) -> ArtifactVerdict:
    """Run an active runner over the held-out set and judge it against the reference's outputs."""
    from deploy.harness.compare import compare_outputs

    candidate = run_held_out(runner, sidecar, held)
    parity = compare_outputs(
        reference,
        candidate,
        tolerance,
        reference_name="onnxruntime-fp32" if has_onnx_reference(sidecar) else "torch",
        candidate_name=f"{runner.name}:{Path(artifact).name}",
        inputs=held.names,
    )
    eager_accuracy = artifact_accuracy = None
    if held.labels is not None:
        out = sidecar.outputs[0].name
        eager_accuracy = float((reference[out].argmax(axis=1) == held.labels).mean())
        artifact_accuracy = float((candidate[out].argmax(axis=1) == held.labels).mean())
    return ArtifactVerdict(
        artifact=artifact,
        model=sidecar.model,
        precision=label,
        backend=runner.name,
        tolerance=tolerance,
        parity=parity,
        samples=len(held.arrays),
        eager_accuracy=eager_accuracy,
        artifact_accuracy=artifact_accuracy,
        reference=reference_description(sidecar),
    )
