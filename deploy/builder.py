"""`deploy build`: the precision stage (typed ONNX per precision) then the compile stage (per deployment target),
each artifact judged against eager PyTorch in a work folder before it is published beside its sidecar."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from deploy.customization import Customization
from deploy.errors import BadInput, MissingDependency, ParityError
from deploy.files import Staging, ensure_writable_dir, scratch_dir, sha256_file
from deploy.harness.heldout import demo_set
from deploy.harness.verify import ArtifactVerdict, Judge, ParityCheck, verdict_record
from deploy.imported import exported_onnx, has_onnx_reference, remake_hint
from deploy.precision.calibration import CalibrationConfig, CalibrationSet, calibration_set, check_calibration
from deploy.precision.int8 import HighPrecision
from deploy.precision.typed import RecipeConfig, make_typed_onnx
from deploy.progress import Step
from deploy.sidecar import (
    PRECISIONS,
    ArtifactLabel,
    Method,
    Precision,
    Sidecar,
    companions,
    load_sidecar,
    sidecar_path,
    withdraw,
)
from deploy.targets import Target, get_target
from deploy.targets.base import CompileRequest, TargetOptions

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildConfig:
    sources: tuple[str, ...] = ()  # model names or exported .onnx files; () = every ONNX in export_dir
    precisions: tuple[Precision, ...] = PRECISIONS
    targets: tuple[str, ...] = ("tensorrt",)  # deployment targets (deploy.targets); INT8 follows each one's recipe
    export_dir: Path = Path("export")
    engines_dir: Path = Path("engines")
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    method: Method = "entropy"
    high_precision: HighPrecision = "fp32"
    recalibrate: bool = False
    max_drop: float | None = None  # INT8: keep the most sensitive layers out until within this many points
    weights: str | None = None  # for models exported on demand (None: the model's default weights)
    custom: Customization = field(default_factory=Customization)  # a fine-tune's head and preprocessing, likewise
    compile: bool | None = None  # None: for every target usable here; False: typed ONNX only; True: or fail
    options: tuple[TargetOptions, ...] = ()  # per-target compile options (TensorRT's PlanOptions, ...)
    # Each artifact is judged against eager PyTorch before it is published; None (--no-verify) skips that.
    verify: ParityCheck | None = field(default_factory=ParityCheck)


@dataclass(frozen=True)
class BuiltArtifact:
    json_derived: ClassVar[tuple[str, ...]] = ("name", "published")
    model: str
    label: ArtifactLabel
    path: Path
    sidecar_path: Path
    sidecar: Sidecar
    seconds: float
    reused_calibration: bool | None = None
    verdict: ArtifactVerdict | None = None  # None: built with --no-verify, or a target that cannot run here
    summary: str = ""  # what the target's compiler reports (TensorRT: layer precisions)

    @property
    def published(self) -> bool:
        return self.verdict is None or self.verdict.passed

    @property
    def name(self) -> str:
        return self.label.name


@dataclass(frozen=True)
class BuildResult:
    json_derived: ClassVar[tuple[str, ...]] = ("passed",)
    artifacts: tuple[BuiltArtifact, ...]
    exported: tuple[Path, ...]
    warnings: tuple[str, ...]
    statuses: tuple[str, ...]  # one line per compiling target: compiled here, or why not
    rejected: tuple[BuiltArtifact, ...] = ()  # failed parity against the reference: built, judged, never published

    @property
    def passed(self) -> bool:
        """No artifact failed parity (an unjudged one, --no-verify, does not fail)."""
        return not self.rejected

    def raise_for_parity(self) -> None:
        """ParityError naming every rejected artifact; the published ones stay as they are."""
        if not self.rejected:
            return
        first = self.rejected[0]
        assert first.verdict is not None
        names = ", ".join(a.path.name for a in self.rejected)
        raise ParityError(
            f"{names} failed parity against {first.verdict.reference} and "
            f"{'was' if len(self.rejected) == 1 else 'were'} not written ({first.verdict.parity.summary()})",
            hint="calibrate on your own images with --calib-dir DIR or try --calib-method; loosen with "
            "--min-cosine/--min-top1 if that is acceptable; --no-verify writes it unjudged",
        )


def build(config: BuildConfig, *, progress: Progress | None = None) -> BuildResult:
    say = progress or (lambda _message: None)
    targets = _check(config)
    compiling, statuses = _compiling(targets, config.compile)
    created = not config.engines_dir.exists()
    engines = ensure_writable_dir(config.engines_dir, option="--out-dir")
    sources, exported = _resolve_sources(config, say)
    warnings: list[str] = []
    built: list[BuiltArtifact] = []
    recipe = RecipeConfig(
        config.calibration,
        config.high_precision,
        config.recalibrate,
        max_drop=config.max_drop,
        budget_images=None if config.verify is None else config.verify.images,
    )
    steps = len(sources) * sum(len(_typed_labels(targets, p, config.method)) for p in config.precisions)
    step = 0
    for source in sources:
        sidecar = load_sidecar(source)
        judge = None if config.verify is None else Judge(sidecar, config.verify, progress=say)
        calib = _calibration(sidecar, config, warnings)
        for precision in config.precisions:
            for label, users in _typed_labels(targets, precision, config.method).items():
                step += 1
                say(Step(f"building {sidecar.model} {label.typed_name}", number=step, total=steps))
                typed = _typed(source, sidecar, label, calib, recipe, engines, judge)
                built.append(typed)
                record = typed.sidecar.precision
                warnings.extend(w for w in (record.warnings if record else ()) if w not in warnings)
                for target in (t for t in users if t in compiling):
                    if not typed.published:  # nothing to compile; an older compile of it must not look valid
                        withdraw(engines / target.artifact_name(typed.path))
                        continue
                    say(Step(f"compiling {typed.path.name} for {target.name}", number=step, total=steps))
                    built.append(_compile(target, typed, config, engines, judge, warnings))
    if created and not any(a.published for a in built):
        with contextlib.suppress(OSError):  # a folder this build made and left empty (all rejected) goes again
            engines.rmdir()
    published = tuple(a for a in built if a.published)
    rejected = tuple(a for a in built if not a.published)
    return BuildResult(published, tuple(exported), tuple(warnings), statuses, rejected)


def _check(config: BuildConfig) -> tuple[Target, ...]:
    if not config.precisions:
        raise BadInput("no precision selected", hint="pass --fp32, --fp16, --int8 or --all")
    if not config.targets:
        raise BadInput("no target selected", hint="pass --target onnxruntime, tensorrt or openvino")
    targets = tuple(dict.fromkeys(get_target(name) for name in config.targets))
    if config.method == "percentile" and "int8" in config.precisions:
        for target in targets:
            if target.int8_recipe != "cpu":
                raise BadInput(
                    f"percentile calibration is not available for the {target.name} target (ModelOpt offers "
                    "entropy and max)",
                    hint="build --target onnxruntime or openvino, or choose --calib-method entropy or max",
                )
    if config.max_drop is not None:
        cpu = [t.name for t in targets if t.int8_recipe == "cpu"]
        if cpu or "int8" not in config.precisions or not 0 <= config.max_drop <= 100:
            raise BadInput(
                f"--max-drop {config.max_drop:g} needs --int8, a budget between 0 and 100 points and the "
                f"TensorRT-style INT8 only{f' (--target {cpu[0]} builds the CPU INT8)' if cpu else ''}",
                hint="pass --int8 --target tensorrt with --max-drop; build the CPU INT8 in a separate "
                "`deploy build MODEL --int8 --target onnxruntime`",
            )
    if {"fp16", "int8"} & set(config.precisions):  # before a model is exported or a folder created
        check_calibration(config.calibration)
    if config.weights is not None or config.custom != Customization():
        _check_weights(config)
    return targets


def _compiling(targets: tuple[Target, ...], wanted: bool | None) -> tuple[set[Target], tuple[str, ...]]:
    """The targets that compile in this build, and one status line per target that has a compile step."""
    compiling: set[Target] = set()
    statuses = []
    for target in targets:
        if not target.compiles or wanted is False:
            continue
        usable, status = target.availability()
        if wanted and not usable:  # refused before any work: nothing is half-built
            raise MissingDependency(
                f"--compile: the {target.name} target cannot compile here: {status}",
                hint="install what it names, or build the typed ONNX only with --no-compile",
            )
        if usable:
            compiling.add(target)
        statuses.append(f"{target.name}: {status}" if usable else f"{target.name}: typed ONNX only here ({status})")
    return compiling, tuple(statuses)


def _typed_labels(
    targets: tuple[Target, ...], precision: Precision, method: Method
) -> dict[ArtifactLabel, list[Target]]:
    """Each typed ONNX these targets need for `precision`, once, with the targets that compile from it."""
    needed: dict[ArtifactLabel, list[Target]] = {}
    for target in targets:
        needed.setdefault(ArtifactLabel.of(precision, method, target.int8_recipe), []).append(target)
    return needed


def _calibration(sidecar: Sidecar, config: BuildConfig, warnings: list[str]) -> CalibrationSet | None:
    if not {"fp16", "int8"} & set(config.precisions):
        return None
    calib = calibration_set(sidecar.preprocessing, demo_set(sidecar), config.calibration)
    warnings.extend(w for w in calib.warnings if w not in warnings)
    return calib


def _resolve_sources(config: BuildConfig, say: Progress) -> tuple[list[Path], list[Path]]:
    """The FP32 ONNX files to build from, each with its sidecar; a model named without an export is exported first.

    A name is looked up as `export_dir/NAME.onnx` before the zoo is asked, so an imported model (`deploy import`)
    builds by its name; an ONNX file without a sidecar is refused with the `deploy import` command that writes one.
    """
    from deploy.imported import exported_onnx, require_sidecar

    exported: list[Path] = []
    if not config.sources:
        sources = sorted(p for p in config.export_dir.glob("*.onnx")) if config.export_dir.is_dir() else []
        if not sources:
            raise BadInput(
                f"no exported ONNX models in {config.export_dir}",
                hint="name a model (`deploy build resnet18`) or export one first with `deploy export MODEL`",
            )
        for source in sources:
            require_sidecar(source, check_hash=False)
        return sources, exported
    sources = []
    for requested in config.sources:
        path = Path(requested)
        if requested.endswith(".onnx") or path.is_file():
            if not path.is_file():
                raise BadInput(f"ONNX file {path} does not exist", hint="export it with `deploy export MODEL`")
            require_sidecar(path, check_hash=False)
            sources.append(path)
            continue
        candidate = exported_onnx(requested, config.export_dir)
        if candidate is not None:  # an imported model, or an export under its own name
            require_sidecar(candidate, check_hash=False)
            sources.append(candidate)
            continue
        from deploy.zoo import get_spec

        name = get_spec(requested).name
        candidate = config.export_dir / f"{name}.onnx"
        if not candidate.is_file():
            from deploy.exporter import ExportConfig, export_model

            say(f"no {candidate}: exporting {name} first")
            ensure_writable_dir(config.export_dir, option="--export-dir")
            export_config = ExportConfig(
                model=name, weights=config.weights, out_dir=config.export_dir, custom=config.custom
            )
            candidate = export_model(export_config, progress=say).onnx_path
            exported.append(candidate)
        else:
            require_sidecar(candidate, check_hash=False)
        sources.append(candidate)
    return sources, exported


def _check_weights(config: BuildConfig) -> None:
    """--weights and the fine-tune options apply to the models build exports itself: refused with ONNX files only,
    and refused where the existing export holds other weights, head or preprocessing (it would be built in their
    place, silently)."""
    from deploy.zoo import get_spec
    from deploy.zoo.weights import recorded_name

    given = " ".join(([f"--weights {config.weights}"] if config.weights else []) + list(config.custom.given_options))
    names = [s for s in config.sources if not (s.endswith(".onnx") or Path(s).is_file())]
    if not names:
        raise BadInput(
            f"{given} applies to a model build exports itself, and no model was named",
            hint=f"name the model instead (`deploy build MODEL {given}`), or drop {given}",
        )
    for name in names:
        own = exported_onnx(name, config.export_dir)
        if own is not None and has_onnx_reference(load_sidecar(own, check_hash=False)):
            raise BadInput(
                f"{given} applies to a registered architecture build exports, and {own} has no PyTorch module",
                hint=f"{remake_hint(load_sidecar(own, check_hash=False))} with the new options, then build it",
            )
        spec = get_spec(name)
        export = config.export_dir / f"{spec.name}.onnx"
        if not export.is_file():
            continue
        sidecar = load_sidecar(export, check_hash=False)
        differences = _custom_differences(config.custom, sidecar)
        if config.weights is not None:
            recorded = sidecar.weights.argument
            wanted = recorded_name(spec, config.weights)
            if wanted != recorded and Path(wanted).resolve() != Path(recorded).resolve():
                differences.insert(0, f"weights {recorded}")
        if differences:
            out = "" if config.export_dir == Path("export") else f" --out-dir {config.export_dir}"
            raise BadInput(
                f"{export} was exported with {', '.join(differences)}, not {given}",
                hint=f"re-export it: `deploy export {spec.name} {given}{out}`; or drop {given}",
            )


def _custom_differences(custom: Customization, sidecar: Sidecar) -> list[str]:
    """What an export recorded that the fine-tune options given to build would change."""
    differences = []
    classes = sidecar.outputs[0].shape[-1]
    if custom.classes is not None and custom.classes != classes:
        differences.append(f"{classes} classes")
    if custom.labels is not None and custom.labels != sidecar.labels:
        differences.append(f"labels from {sidecar.labels_source or 'the model'}")
    if custom.changes_preprocessing and custom.preprocessing(sidecar.preprocessing) != sidecar.preprocessing:
        differences.append(f"preprocessing {sidecar.preprocessing}")
    return differences


def _typed(
    source: Path,
    sidecar: Sidecar,
    label: ArtifactLabel,
    calib: CalibrationSet | None,
    recipe: RecipeConfig,
    engines: Path,
    judge: Judge | None,
) -> BuiltArtifact:
    started = time.perf_counter()
    final = engines / f"{source.stem}.{label.typed_name}.onnx"
    with _work_dir(engines) as work:
        typed = make_typed_onnx(source, sidecar, label, calib, recipe, work / final.name)
        described = dataclasses.replace(
            sidecar,
            artifact=final.name,
            sha256=sha256_file(typed.path),
            size_bytes=typed.path.stat().st_size,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            parity=None,
            precision=dataclasses.replace(typed.record, build_seconds=round(time.perf_counter() - started, 3)),
            label=label,
            target=None,
        )
        described, verdict = _judged(typed.path, described, final, judge)
    return BuiltArtifact(
        sidecar.model, label, final, sidecar_path(final), described, time.perf_counter() - started,
        typed.reused_calibration, verdict,
    )  # fmt: skip


def _compile(
    target: Target,
    typed: BuiltArtifact,
    config: BuildConfig,
    engines: Path,
    judge: Judge | None,
    warnings: list[str],
) -> BuiltArtifact:
    options = next((o for o in config.options if o.target == target.name), None)
    with _work_dir(engines) as work:
        request = CompileRequest(typed.path, typed.sidecar, work, engines, options)
        try:
            compiled = target.compile(request)
        except BaseException:  # a failed compile leaves no older artifact of this typed ONNX looking current
            withdraw(engines / target.artifact_name(typed.path))
            raise
        assert compiled is not None  # only targets with a compile step are compiling
        warnings.extend(compiled.warnings)
        final = engines / compiled.path.name
        try:
            described, verdict = _judged(compiled.path, compiled.sidecar, final, judge)
        except MissingDependency as exc:  # compiled here, but its runtime is missing: published unjudged
            warnings.append(f"{final} was not verified here ({exc.message}); run `deploy verify {final}` where it runs")
            described, verdict = _judged(compiled.path, compiled.sidecar, final, None)
    return BuiltArtifact(
        typed.model, described.label, final, sidecar_path(final), described, compiled.seconds, None, verdict,
        compiled.summary,
    )  # fmt: skip


def _judged(path: Path, sidecar: Sidecar, final: Path, judge: Judge | None) -> tuple[Sidecar, ArtifactVerdict | None]:
    """Judge the artifact at `path` (in a work folder); publish it as `final` if it passes, else withdraw any
    earlier file at `final`, which is not what was asked for now and must not stay looking valid."""
    verdict = None
    if judge is not None:
        verdict = judge(path, sidecar, name=str(final))
        sidecar = dataclasses.replace(sidecar, parity=verdict_record(verdict, judge.images))
    if verdict is None or verdict.passed:
        publish(path, sidecar, final)
    else:
        withdraw(final)
    return sidecar, verdict


def publish(path: Path, sidecar: Sidecar, final: Path) -> None:
    """Move the artifact and its companions beside `final`, then its sidecar; all appear together or none."""
    with Staging() as staging:
        for file in (path, *companions(path, sidecar)):
            os.replace(file, staging.path_for(final.with_name(file.name)))
        staging.path_for(sidecar_path(final)).write_text(sidecar.to_json(), encoding="utf-8")
        staging.commit()


@contextlib.contextmanager
def _work_dir(engines: Path) -> Iterator[Path]:
    with scratch_dir(engines, "build") as work:
        yield work


__all__ = ["BuildConfig", "BuildResult", "BuiltArtifact", "build"]
