"""`deploy bench`: eager PyTorch and every artifact timed in one interleaved run, so machine drift cancels.

Each round runs every runner for a few iterations in turn (A B C, A B C, …) on the same rotating pool of real
preprocessed images; per round, the speed-up of each artifact is eager's round median over the artifact's round
median, and the spread of those per-round ratios is reported with their median. Each runner's turn starts with
`settle` untimed iterations: the previous runner's worker threads keep spinning for a while after it returns
(ONNX Runtime and OpenMP both spin-wait by default), and measured here on 2 cores that made the first iteration
of every turn 1.5-3x slower (resnet50 INT8: 26.9 ms vs 8.9 ms) and dominated p90/p99.

With TensorRT plans, eager PyTorch also runs on CUDA in the same rounds ("eager-cuda"), and after the rounds
each plan and eager CUDA get trtexec-style CUDA-event timings (H2D, compute, D2H, end to end).

A model brought in with `deploy import` has no PyTorch module: its reference row is its FP32 ONNX on ONNX
Runtime's CPU provider ("imported-onnx"), the CPU artifacts' speed-up baseline; its plans get no speed-up (there
is no reference on CUDA to divide by), which the progress messages say.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deploy.backends.base import Runner, TensorMeta
from deploy.backends.timing import (
    BenchConfig,
    GpuStages,
    LatencyStats,
    Overhead,
    Ratio,
    latency_stats,
    ratio_of,
    rotating_feeds,
    significant,
    warm_up,
)
from deploy.environment import cpu_name, usable_cores
from deploy.errors import BadInput, MissingDependency
from deploy.harness.checks import MAX_BATCH, check_float, check_int
from deploy.harness.eager import eager_runner
from deploy.harness.heldout import held_out_set
from deploy.harness.reference import reference_runner
from deploy.imported import (
    EAGER_ROW,
    exported_onnx,
    has_onnx_reference,
    is_imported,
    no_module,
    reference_row,
    reimport_command,
    require_sidecar,
)
from deploy.progress import Step
from deploy.sidecar import Sidecar
from deploy.targets import artifact_suffixes, check_runnable, runner_for, target_for

Progress = Callable[[str], None]
EAGER_CUDA = "eager-cuda"
Feed = Mapping[str, np.ndarray]


DEFAULT_BATCHES = (1, 8)
# Upper bounds that catch a typo (`--duration 3e5`) before it holds the machine for days. Interleaving already
# cancels drift, so a longer run adds rounds, not accuracy; an hour per batch size is far past what that needs.
MAX_DURATION_S = 3600.0
MAX_ROUNDS = 10_000  # iterations per turn, settle iterations, minimum rounds


@dataclass(frozen=True)
class InterleavedConfig:
    artifacts: tuple[Path, ...]
    # None: 1 and 8, where every artifact takes them (a static export: its own batch). Given batches must fit
    # every artifact's batch range, or the run is refused before any work.
    batches: tuple[int, ...] | None = None
    threads: int = field(default_factory=usable_cores)
    duration_s: float = 5.0  # per batch size, all runners together
    warmup_s: float = 0.5
    per_round: int = 5
    settle: int = 1  # untimed iterations at the start of each turn (see the module docstring)
    min_rounds: int = 5
    images: Path | None = None
    eager: bool = True  # time the reference (eager PyTorch, or an imported model's FP32 ONNX) for the speed-up

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class BatchResult:
    batch: int
    latency: dict[str, LatencyStats]
    speedup: dict[str, Ratio] = field(default_factory=dict)  # artifact → reference p50 / artifact p50 per round
    gpu: dict[str, dict[str, LatencyStats]] = field(default_factory=dict)  # runner → end_to_end/h2d/compute/d2h


@dataclass(frozen=True)
class InterleavedResult:
    model: str
    threads: int
    cpu: str
    cores: int | None
    batches: tuple[BatchResult, ...]
    reference: str | None = EAGER_ROW  # the CPU baseline's row: eager, imported-onnx; None with --no-eager
    artifacts: dict[str, str] = field(default_factory=dict)  # runner name → the artifact file it timed

    def json_data(self) -> dict[str, object]:
        """`deploy bench --json`'s payload: one row per runner and batch with stable keys, timings to 4
        significant digits, images/s, the full artifact path; p99 is null below TAIL_MIN_ITERATIONS."""
        return {
            "model": self.model,
            "threads": self.threads,
            "cpu": self.cpu,
            "cores": self.cores,
            "reference": self.reference,
            "rows": [self._row(item, name) for item in self.batches for name in item.latency],
        }

    def _row(self, item: BatchResult, name: str) -> dict[str, object]:
        stats = item.latency[name]
        ratio = item.speedup.get(name)
        return {
            "batch": item.batch,
            "runner": name,
            "artifact": self.artifacts.get(name),
            "iterations": stats.iterations,
            "p50_ms": significant(stats.p50_ms),
            "p90_ms": significant(stats.p90_ms),
            "p99_ms": significant(stats.p99_ms) if stats.tail_backed else None,
            "max_ms": significant(stats.max_ms),
            "mean_ms": significant(stats.mean_ms),
            "images_per_s": significant(stats.throughput),
            "speedup": None
            if ratio is None
            else {"median": significant(ratio.median), "p10": significant(ratio.p10), "p90": significant(ratio.p90),
                  "rounds": ratio.rounds},
            "gpu_p50_ms": {stage: significant(s.p50_ms) for stage, s in item.gpu.get(name, {}).items()} or None,
        }  # fmt: skip


def run_interleaved(
    runners: Mapping[str, Runner], feeds: Sequence[Feed], *, duration_s: float, warmup_s: float,
    per_round: int, min_rounds: int, settle: int = 1,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:  # fmt: skip
    """All timed samples and per-round medians (ms) for each active runner, measured A B C, A B C, …"""
    index = 0
    for runner in runners.values():
        index = warm_up(runner, feeds, warmup_s, start=index)
    samples: dict[str, list[float]] = {name: [] for name in runners}
    rounds: dict[str, list[float]] = {name: [] for name in runners}
    started = time.perf_counter()
    while len(next(iter(rounds.values()))) < min_rounds or time.perf_counter() - started < duration_s:
        for name, runner in runners.items():
            for _ in range(settle):
                runner.infer(feeds[index % len(feeds)])
                index += 1
            round_samples = []
            for _ in range(per_round):
                feed = feeds[index % len(feeds)]
                begin = time.perf_counter_ns()
                runner.infer(feed)
                round_samples.append((time.perf_counter_ns() - begin) / 1e6)
                index += 1
            samples[name].extend(round_samples)
            rounds[name].append(statistics.median(round_samples))
    return samples, rounds


def bench(
    config: InterleavedConfig, *, progress: Progress | None = None, extra: Mapping[str, Runner] | None = None
) -> InterleavedResult:
    """`extra`: more runners (peers) timed in the same rounds, entered and left here like the artifacts' runners."""
    say = progress or (lambda _message: None)
    if not config.artifacts:
        raise BadInput("no artifacts to time", hint="pass export/MODEL.onnx or engines/MODEL.PRECISION.onnx files")
    sidecars = {path: require_sidecar(path) for path in config.artifacts}
    models = {sidecar.model for sidecar in sidecars.values()}
    if len(models) != 1:
        raise BadInput(f"artifacts of several models ({', '.join(sorted(models))})", hint="bench one model per run")
    if len({sidecar.reference_key for sidecar in sidecars.values()}) != 1:
        raise BadInput(
            f"these {next(iter(models))} artifacts come from different exports (weights, head or preprocessing), "
            "so no one eager reference fits them all",
            hint="bench the artifacts of one export per run",
        )
    batches = batches_for(sidecars, config.batches)
    for path in sidecars:  # a plan without TensorRT or a GPU: refused before eager PyTorch sets up CUDA
        check_runnable(path)
    first = next(iter(sidecars.values()))
    on_gpu = {path.name for path in sidecars if target_for(path).device == "cuda"}  # timed against eager CUDA
    if config.eager and on_gpu:
        if has_onnx_reference(first):
            say(f"{', '.join(sorted(on_gpu))}: no speed-up (no CUDA baseline: {no_module(first)})")
        else:
            _check_eager_cuda()
    held = held_out_set(first, images=config.images, count=None)
    runners = _runners(config, sidecars, first) | dict(extra or {})
    baseline = reference_row(first) if config.eager else None
    results = []
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with contextlib.ExitStack() as stack:
            for runner in runners.values():
                stack.enter_context(runner)
            for number, batch in enumerate(batches, start=1):
                say(Step(f"batch {batch}: timing {', '.join(runners)} interleaved for {config.duration_s:g} s",
                         number=number, total=len(batches)))  # fmt: skip
                feeds = rotating_feeds(held.arrays, batch, first.inputs[0].name)
                samples, rounds = run_interleaved(
                    runners, feeds, duration_s=config.duration_s, warmup_s=config.warmup_s,
                    per_round=config.per_round, min_rounds=config.min_rounds, settle=config.settle,
                )  # fmt: skip
                latency = {n: latency_stats(n, batch, config.threads, s) for n, s in samples.items()}
                references = {EAGER_CUDA: [n for n in runners if n in on_gpu]}
                if baseline is not None:
                    references[baseline] = [n for n in runners if n not in (baseline, EAGER_CUDA, *on_gpu)]
                speedup = {
                    name: ratio_of(rounds[reference], rounds[name])
                    for reference, names in references.items() if reference in runners for name in names
                }  # fmt: skip
                gpu = _gpu_breakdown(runners, feeds, config) if references[EAGER_CUDA] else {}
                results.append(BatchResult(batch, latency, speedup, gpu))
    finally:
        torch.set_num_threads(previous)
    files = {path.name: str(path) for path in sidecars}
    return InterleavedResult(first.model, config.threads, cpu_name(), usable_cores(), tuple(results), baseline, files)


def check_settings(config: InterleavedConfig) -> None:
    """Refuse impossible or endless timing settings before any work starts (also run on construction)."""
    if config.batches is not None:
        if not config.batches or any(b < 1 for b in config.batches):
            raise BadInput(f"--batch {list(config.batches)} must be positive batch sizes", hint="e.g. --batch 1,8")
        check_int("--batch", max(config.batches), low=1, high=MAX_BATCH, example="1,8")
    # More threads than cores times contention between spin-waiting workers, not the model.
    check_int("--threads", config.threads, low=1, high=usable_cores(), example=1)
    check_float("--duration", config.duration_s, low=0.0, open_low=True, high=MAX_DURATION_S, example=3)
    check_float("warmup_s", config.warmup_s, low=0.0, high=MAX_DURATION_S, example=0.5)
    check_int("per_round", config.per_round, low=1, high=MAX_ROUNDS, example=5)
    check_int("settle", config.settle, low=0, high=MAX_ROUNDS, example=1)
    check_int("min_rounds", config.min_rounds, low=1, high=MAX_ROUNDS, example=5)


def accepts(sidecar: Sidecar, batch: int) -> bool:
    """Whether the artifact runs `batch` images at once: within a dynamic range, or its static batch exactly."""
    if sidecar.batch.dynamic:
        return sidecar.batch.min <= batch <= sidecar.batch.max
    return batch == sidecar.batch.max


def batches_for(sidecars: Mapping[Path, Sidecar], wanted: tuple[int, ...] | None) -> tuple[int, ...]:
    """The batch sizes to time: the ones asked for, each refused unless every artifact takes it; by default 1 and 8
    (or a static artifact's own batch) where every artifact takes them."""
    if wanted is not None:
        for batch in wanted:
            for path, sidecar in sidecars.items():
                if not accepts(sidecar, batch):
                    raise BadInput(
                        f"--batch {batch} is outside the batch range of {path} ({_range_text(sidecar)})",
                        hint=_range_fix(sidecar, batch),
                    )
        return wanted
    static = sorted({s.batch.max for s in sidecars.values() if not s.batch.dynamic})
    fitting = tuple(
        b for b in dict.fromkeys((*DEFAULT_BATCHES, *static)) if all(accepts(s, b) for s in sidecars.values())
    )
    if not fitting:
        ranges = "; ".join(f"{path.name}: {_range_text(s)}" for path, s in sidecars.items())
        raise BadInput(f"no batch size fits every artifact ({ranges})", hint="bench them in separate runs")
    return fitting


def _range_text(sidecar: Sidecar) -> str:
    if sidecar.batch.dynamic:
        return f"dynamic batch {sidecar.batch.min}-{sidecar.batch.max}"
    return f"static batch {sidecar.batch.max}"


def _range_fix(sidecar: Sidecar, batch: int) -> str:
    """How to get an artifact that takes `batch`: export (or import) it so, and rebuild what came from that."""
    if is_imported(sidecar):
        return _imported_range_fix(sidecar, batch)
    if has_onnx_reference(sidecar):  # your module, exported from Python: no command can re-export it
        within = f"within {sidecar.batch.min}-{sidecar.batch.max}" if sidecar.batch.dynamic else str(sidecar.batch.max)
        return f"pass --batch {within}, or export your module again from Python with max_batch={batch}"
    export = sidecar.export_command("--max-batch", str(batch))
    built = sidecar.precision is not None or sidecar.target is not None
    rebuild = f", then `deploy build {sidecar.model}` again" if built else ""
    if sidecar.batch.dynamic:
        return f"pass --batch within {sidecar.batch.min}-{sidecar.batch.max}, or re-export with `{export}`{rebuild}"
    return f"pass --batch {sidecar.batch.max}, or re-export with a dynamic batch: `{export}`{rebuild}"


def _imported_range_fix(sidecar: Sidecar, batch: int) -> str:
    """An imported model's batch range comes from its ONNX (static) or from --max-batch at import (dynamic)."""
    built = sidecar.precision is not None or sidecar.target is not None
    rebuild = f", then `deploy build {sidecar.model}` again" if built else ""
    if sidecar.batch.dynamic:
        wider = dataclasses.replace(sidecar, batch=dataclasses.replace(sidecar.batch, max=batch))
        return (
            f"pass --batch within {sidecar.batch.min}-{sidecar.batch.max}, or re-import it with "
            f"`{reimport_command(wider)}`{rebuild}"
        )
    return (
        f"pass --batch {sidecar.batch.max}: the imported ONNX has a static batch; save it with a dynamic batch "
        f"dimension from the tool that made it, then `deploy import` it again{rebuild}"
    )


def _check_eager_cuda() -> None:
    """Plans are timed against eager PyTorch on CUDA: a CPU-only torch build is refused before any work."""
    import torch

    if not torch.cuda.is_available():
        raise MissingDependency(
            "eager PyTorch on CUDA (the reference TensorRT plans are timed against) is not usable: this torch has "
            "no CUDA or sees no GPU",
            hint="install a CUDA build of torch, or pass --no-eager to time the plans alone",
        )


def artifacts_of(model: str, export_dir: Path, engines_dir: Path) -> tuple[Path, ...]:
    """Every artifact of `model` with a sidecar: its export, its typed ONNX builds and what targets compiled."""
    from deploy.sidecar import sidecar_path

    exported = exported_onnx(model, export_dir)
    if exported is not None:  # an imported model (or any export): found before the zoo is asked
        require_sidecar(exported, check_hash=False)  # an ONNX without one: the command that imports it
        name = model
    else:
        from deploy.zoo import get_spec

        name = get_spec(model).name
    found = [export_dir / f"{name}.onnx"]
    found += [path for suffix in artifact_suffixes() for path in sorted(engines_dir.glob(f"{name}.*{suffix}"))]
    found = [path for path in found if path.is_file() and sidecar_path(path).is_file()]
    if not found:
        raise BadInput(
            f"no artifacts of {name} in {export_dir} or {engines_dir}",
            hint=f"run `deploy export {name}` and `deploy build {name}` first, or pass the files",
        )
    return tuple(found)


def _runners(config: InterleavedConfig, sidecars: dict[Path, Sidecar], first: Sidecar) -> dict[str, Runner]:
    runners: dict[str, Runner] = {}
    if config.eager:
        runners[reference_row(first)] = reference_runner(first, threads=config.threads)
        if not has_onnx_reference(first) and any(target_for(path).device == "cuda" for path in sidecars):
            runners[EAGER_CUDA] = eager_runner(first, device="cuda")
    for path, sidecar in sidecars.items():
        runners[path.name] = runner_for(path, threads=config.threads, sidecar=sidecar)
    return runners


def _gpu_breakdown(
    runners: Mapping[str, Runner], feeds: Sequence[Feed], config: InterleavedConfig
) -> dict[str, dict[str, LatencyStats]]:
    """trtexec-style CUDA-event timings for each plan and for eager CUDA, on the same feeds, after the rounds."""
    settings = BenchConfig(warmup_s=config.warmup_s, min_duration_s=1.0, threads=config.threads)
    timings: dict[str, GpuStages] = {}
    for name, runner in runners.items():
        if (stages := runner.gpu_stages(feeds, settings)) is not None:
            timings[name] = stages
    return {
        name: {"end_to_end": t.end_to_end, "h2d": t.h2d, "compute": t.compute, "d2h": t.d2h}
        for name, t in timings.items()
    }


def onnxruntime_overhead(artifact: Path, *, batch: int = 1, duration_s: float = 2.0, threads: int = 1) -> Overhead:
    """The Runner's infer against a bare InferenceSession.run on the same inputs, interleaved."""
    from deploy.targets.onnxruntime.runner import OrtRunner

    sidecar = require_sidecar(artifact)
    feeds = rotating_feeds(held_out_set(sidecar, images=None, count=None).arrays, batch, sidecar.inputs[0].name)
    runner = OrtRunner(artifact, intra_op_threads=threads)
    with runner:
        session = runner.session

        class _Bare(Runner):
            name = "bare"

            def activate(self) -> None: ...
            def deactivate(self) -> None: ...
            @property
            def inputs(self) -> tuple[TensorMeta, ...]:
                return runner.inputs

            @property
            def outputs(self) -> tuple[TensorMeta, ...]:
                return runner.outputs

            def infer(self, feed: Feed) -> dict[str, np.ndarray]:
                return dict(zip([o.name for o in session.get_outputs()], session.run(None, dict(feed)), strict=True))

        samples, _ = run_interleaved(
            {"runner": runner, "bare": _Bare()}, feeds, duration_s=duration_s, warmup_s=0.2, per_round=5, min_rounds=5
        )
    return Overhead(batch, float(np.median(samples["runner"])), float(np.median(samples["bare"])))
