"""Parity as data: elementwise atol/rtol (Polygraphy semantics) plus cosine similarity and top-k agreement."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from deploy.backends.base import Runner
from deploy.errors import BadInput
from deploy.harness.checks import check_float


@dataclass(frozen=True)
class Tolerance:
    """When a candidate output passes against the reference.

    An element fails only when it exceeds *both* `atol` and `rtol` (relative to the reference), as Polygraphy's
    elementwise check does. `min_cosine` bounds the worst per-sample cosine similarity; `min_top1` bounds the
    fraction of samples whose arg-max agrees (classifier outputs only). None disables a criterion.
    """

    atol: float | None = 1e-4
    rtol: float | None = 1e-3
    min_cosine: float | None = 0.9999
    min_top1: float | None = None

    def __post_init__(self) -> None:
        check_tolerances(dict(atol=self.atol, rtol=self.rtol, min_cosine=self.min_cosine, min_top1=self.min_top1))


TOLERANCE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Tolerance))


def check_tolerances(values: Mapping[str, float | None]) -> None:
    """Tolerance values (or overrides, None = keep the default) refused as bad options (exit 2) before any work,
    rather than judged as a parity failure (exit 3): a negative atol fails everything, a cosine of 2 nothing passes.
    """
    for name, value in values.items():
        option = "--" + name.replace("_", "-")
        if name not in TOLERANCE_FIELDS:
            raise BadInput(f"{name!r} is not a tolerance", hint=f"override one of {', '.join(TOLERANCE_FIELDS)}")
        if value is None:
            continue
        if name in ("atol", "rtol"):  # 0 demands exact equality: strict, but meaningful
            check_float(option, value, low=0.0, example="1e-3")
        else:  # a cosine bound below 0 would pass opposite outputs; top-1 agreement is a fraction
            check_float(option, value, low=0.0, high=1.0, example=0.99)


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    # FP32 artifacts must be numerically equivalent to eager.
    "fp32": Tolerance(atol=1e-3, rtol=1e-3, min_cosine=0.99999),
    # Lower precisions cannot match elementwise on large logits (errors are still reported); they are judged by
    # direction (per-sample cosine; 0.9999 is a relative L2 error of about 1.4%) and by decisions (top-1).
    "fp16": Tolerance(atol=None, rtol=None, min_cosine=0.9999, min_top1=0.99),
    "int8": Tolerance(atol=None, rtol=None, min_cosine=0.99, min_top1=0.9),
    # Random weights have near-zero decision margins and amplify rounding through depth: top-1 agreement there
    # measures ties, not precision. Measured on eight demo photos: FP16 cosine 0.99975 (inception_v3), INT8 cosine
    # 0.95-0.998 with top-1 agreement 25-100% (resnet18/googlenet/densenet121); trained LeNet-5 keeps 0.99999.
    "fp16-random": Tolerance(atol=None, rtol=None, min_cosine=0.999, min_top1=None),
    "int8-random": Tolerance(atol=None, rtol=None, min_cosine=0.9, min_top1=None),
}


@dataclass(frozen=True)
class OutputComparison:
    name: str
    passed: bool
    samples: int
    max_abs: float
    p99_abs: float
    mean_abs: float
    max_rel: float
    p99_rel: float
    mismatched_fraction: float
    cosine_mean: float
    cosine_min: float
    top1_agreement: float | None
    top5_agreement: float | None
    failures: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.passed


@dataclass(frozen=True)
class ParityReport:
    reference: str
    candidate: str
    tolerance: Tolerance
    inputs: tuple[str, ...]
    outputs: tuple[OutputComparison, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(self.outputs)

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data

    def summary(self) -> str:
        parts = []
        for out in self.outputs:
            text = f"{out.name}: max|Δ| {out.max_abs:.3g}, cosine min {out.cosine_min:.6f}"
            if out.top1_agreement is not None:
                text += f", top-1 agreement {out.top1_agreement:.1%}"
            if out.failures:
                text += f" — FAILED {'; '.join(out.failures)}"
            parts.append(text)
        return "; ".join(parts)


def compare_arrays(name: str, reference: np.ndarray, candidate: np.ndarray, tol: Tolerance) -> OutputComparison:
    """Compare one output over a batch of samples (axis 0 is the sample axis)."""
    if reference.shape != candidate.shape:
        raise ValueError(f"output {name!r}: shapes differ, {reference.shape} vs {candidate.shape}")
    # float32 keeps feature-map outputs (inception_block: 16M values per image) affordable; sums use float64.
    ref = reference.astype(np.float32, copy=False).reshape(reference.shape[0], -1)
    cand = candidate.astype(np.float32, copy=False).reshape(candidate.shape[0], -1)
    abs_err = np.abs(ref - cand)
    # Relative to a zero reference the error is huge rather than infinite, so percentiles stay finite.
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        rel_err = np.minimum(abs_err / np.maximum(np.abs(ref), np.float32(1e-30)), np.float32(1e30))
    finite = bool(np.isfinite(cand).all())

    mismatched = np.ones_like(abs_err, dtype=bool)
    if tol.atol is not None:
        mismatched &= abs_err > tol.atol
    if tol.rtol is not None:
        mismatched &= rel_err > tol.rtol
    if tol.atol is None and tol.rtol is None:
        mismatched[:] = False

    cosines = _cosine_per_sample(ref, cand)
    top1, top5 = _topk_agreement(ref, cand) if reference.ndim == 2 and reference.shape[1] > 1 else (None, None)

    failures = []
    if not finite:
        failures.append("non-finite values")
    if mismatched.any():
        failures.append(f"{mismatched.mean():.2%} of elements beyond atol={tol.atol} and rtol={tol.rtol}")
    if tol.min_cosine is not None and cosines.min() < tol.min_cosine:
        failures.append(f"cosine {cosines.min():.6f} < {tol.min_cosine}")
    if tol.min_top1 is not None and top1 is not None and top1 < tol.min_top1:
        failures.append(f"top-1 agreement {top1:.1%} < {tol.min_top1:.1%}")

    return OutputComparison(
        name=name,
        passed=not failures,
        samples=int(reference.shape[0]),
        max_abs=float(abs_err.max()),
        p99_abs=float(np.percentile(abs_err, 99)),
        mean_abs=float(abs_err.mean(dtype=np.float64)),
        max_rel=float(rel_err.max()),
        p99_rel=float(np.percentile(rel_err, 99)),
        mismatched_fraction=float(mismatched.mean()),
        cosine_mean=float(cosines.mean()),
        cosine_min=float(cosines.min()),
        top1_agreement=top1,
        top5_agreement=top5,
        failures=tuple(failures),
    )


def _cosine_per_sample(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    dot = np.einsum("ij,ij->i", ref, cand, dtype=np.float64)
    norms = np.sqrt(
        np.einsum("ij,ij->i", ref, ref, dtype=np.float64) * np.einsum("ij,ij->i", cand, cand, dtype=np.float64)
    )
    # Two all-zero samples are identical; one zero and one not are orthogonal.
    both_zero = norms == 0
    cos = np.where(both_zero, 0.0, dot / np.where(both_zero, 1.0, norms))
    identical = both_zero & (np.abs(ref - cand).max(axis=1) == 0)
    return np.where(identical, 1.0, np.nan_to_num(cos, nan=-1.0))


def _topk_agreement(ref: np.ndarray, cand: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Top-1: share of samples with the same arg-max. Top-5: mean overlap of the two top-5 sets."""
    k = min(k, ref.shape[1])
    top1 = float((ref.argmax(axis=1) == cand.argmax(axis=1)).mean())
    ref_top = np.argsort(-ref, axis=1)[:, :k]
    cand_top = np.argsort(-cand, axis=1)[:, :k]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(ref_top, cand_top, strict=True)]
    return top1, float(np.mean(overlap))


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    tol: Tolerance,
    *,
    reference_name: str = "reference",
    candidate_name: str = "candidate",
    inputs: Sequence[str] = (),
    per_output: Mapping[str, Tolerance] | None = None,
) -> ParityReport:
    missing = sorted(set(reference) - set(candidate))
    if missing:
        raise ValueError(f"{candidate_name} did not produce outputs {missing}")
    overrides = per_output or {}
    outputs = tuple(
        compare_arrays(name, reference[name], candidate[name], overrides.get(name, tol)) for name in reference
    )
    return ParityReport(reference_name, candidate_name, tol, tuple(inputs), outputs)


def run_parity(
    reference: Runner,
    candidate: Runner,
    batches: Iterable[Mapping[str, np.ndarray]],
    tol: Tolerance,
    *,
    input_names: Sequence[str] = (),
) -> ParityReport:
    """Feed the same batches to two active runners and compare everything they return, concatenated."""
    ref_parts: dict[str, list[np.ndarray]] = {}
    cand_parts: dict[str, list[np.ndarray]] = {}
    for feed in batches:
        for parts, runner in ((ref_parts, reference), (cand_parts, candidate)):
            for name, value in runner.infer(feed).items():
                parts.setdefault(name, []).append(value)
    ref = {name: np.concatenate(values) for name, values in ref_parts.items()}
    cand = {name: np.concatenate(values) for name, values in cand_parts.items()}
    return compare_outputs(
        ref, cand, tol, reference_name=reference.name, candidate_name=candidate.name, inputs=input_names
    )


def with_overrides(tol: Tolerance, **changes: float | None) -> Tolerance:
    """Apply only the overrides the user actually gave (None means keep the default)."""
    return replace(tol, **{key: value for key, value in changes.items() if value is not None})
