"""The machine we run on: CPU name and the integer instruction set ONNX Runtime's INT8 kernels will use.

One probe shared by the CPU INT8 build, the ONNX Runtime runner, timing and reports, so every place that states or
depends on the instruction set says the same thing. The probe reads what the operating system reports (Linux
`/proc/cpuinfo`, macOS `sysctl`), then PyTorch's cpuinfo library, and says "unknown" rather than guess: callers
treat an unknown x86 CPU as one whose U8S8 kernels can saturate.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

IsaLevel = Literal["amx", "avx512-vnni", "avx-vnni", "avx512", "avx2", "x86-64", "arm64", "unknown"]

# Levels whose int8 dot products accumulate u8×s8 products straight into int32 (VPDPBUSD, TDPBUSD) or that have
# no int16 pair-sum path at all (ONNX Runtime's arm64 kernels widen to 32 bits): U8S8 is exact there.
EXACT_U8S8: frozenset[str] = frozenset({"amx", "avx512-vnni", "avx-vnni", "arm64"})


@dataclass(frozen=True)
class CpuIsa:
    """The best integer instruction set level of this CPU for ONNX Runtime's INT8 kernels, and how it was learned."""

    level: IsaLevel
    source: str  # "/proc/cpuinfo", "sysctl", "torch cpuinfo", "injected", or why it is unknown

    @property
    def exact_u8s8(self) -> bool:
        """Whether U8S8 matrix products are exact here; False on AVX2/AVX-512 without VNNI and when unknown."""
        return self.level in EXACT_U8S8

    def describe(self) -> str:
        kernels = "exact U8S8 int8 kernels" if self.exact_u8s8 else "U8S8 int8 kernels can saturate (int16 pair sums)"
        return f"{self.level} ({kernels}; from {self.source})"


_ARM = ("aarch64", "arm64")
# Flag spellings of /proc/cpuinfo (Linux) and of macOS sysctl, best level first.
_LEVEL_FLAGS: tuple[tuple[IsaLevel, tuple[str, ...]], ...] = (
    ("amx", ("amx_int8", "amx-int8")),
    ("avx512-vnni", ("avx512_vnni", "avx512vnni")),
    ("avx-vnni", ("avx_vnni", "avxvnni")),
    ("avx512", ("avx512bw", "avx512f")),
    ("avx2", ("avx2",)),
)


def level_from_flags(flags: set[str]) -> IsaLevel:
    lowered = {flag.lower() for flag in flags}
    for level, names in _LEVEL_FLAGS:
        if lowered & set(names):
            return level
    return "x86-64"


@functools.cache
def cpu_isa() -> CpuIsa:
    """This CPU's level (cached for the process); tests and callers that need another machine pass a CpuIsa."""
    machine = platform.machine().lower()
    if machine in _ARM:
        return CpuIsa("arm64", f"platform.machine() = {machine}")
    if machine not in ("x86_64", "amd64", "x86", "i686"):
        return CpuIsa("unknown", f"unrecognised machine {machine!r}")
    for source, flags in (("/proc/cpuinfo", _proc_flags), ("sysctl", _sysctl_flags)):
        found = flags()
        if found:
            return CpuIsa(level_from_flags(found), source)
    return _torch_level()


def _proc_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _sysctl_flags() -> set[str]:
    if platform.system() != "Darwin":
        return set()
    keys = ("machdep.cpu.features", "machdep.cpu.leaf7_features")
    try:
        done = subprocess.run(["sysctl", "-n", *keys], capture_output=True, text=True, check=False, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(done.stdout.replace(".", "_").split()) if done.returncode == 0 else set()


def _torch_level() -> CpuIsa:
    """PyTorch bundles the cpuinfo library, which reads CPUID on every OS (its probes are private API: guarded)."""
    try:
        import torch.cpu
    except ImportError:
        return CpuIsa("unknown", "no /proc/cpuinfo, no sysctl flags, no PyTorch")
    probes: tuple[tuple[IsaLevel, str], ...] = (
        ("amx", "_is_amx_tile_supported"),
        ("avx512-vnni", "_is_vnni_supported"),
        ("avx512", "_is_avx512_supported"),
        ("avx2", "_is_avx2_supported"),
    )
    for level, name in probes:
        probe = getattr(torch.cpu, name, None)
        if probe is not None and probe():
            return CpuIsa(level, "torch cpuinfo")
    return CpuIsa("unknown", "torch cpuinfo found no AVX2")


CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cores(*, cgroup_root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may use, the default thread count: its CPU affinity (`taskset`, `docker
    --cpuset-cpus`), capped by a cgroup CPU quota (`docker --cpus 2`, a Kubernetes CPU limit) rounded up, never
    the host's count that os.cpu_count() reports (more threads than the quota allows stall on throttling)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs' worth of time the cgroup grants per period (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`), None when
    unlimited or not readable. Reads the root of the cgroup filesystem as mounted in the container."""
    try:
        quota, period = (root / "cpu.max").read_text(encoding="ascii").split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text(encoding="ascii").strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text(encoding="ascii").strip()
        except OSError:
            return None
    try:
        if quota == "max" or int(quota) <= 0 or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except ValueError:
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def installed_version(distribution: str) -> str | None:
    """The installed version of a pip distribution, or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def environment(threads: int, versions: dict[str, str], gpu: str | None = None) -> dict[str, Any]:
    """What a report states about the machine its numbers came from."""
    return {
        "cpu": cpu_name(),
        "isa": cpu_isa().level,
        "cores": usable_cores(),
        "threads": threads,
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }
