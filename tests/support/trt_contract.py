"""Check the TensorRT names our code uses against the real 11.4 bindings and the 10.13 stubs, without TensorRT.

- 11.4: `tensorrt_bindings/tensorrt.so` from the `tensorrt-cu13-bindings` wheel holds every exported name as a
  string (the linker may store a name as the tail of a longer one, e.g. INT8 inside UINT8).
- 10.13: `tensorrt-stubs` gives classes, their members, and "[DEPRECATED]" notes. What 10.x deprecated is what 11.x
  removed (BuilderFlag.FP16/INT8, the INT8 calibrators), so a deprecated name fails the contract too.
- Our side is derived from the code (AST): chains rooted at a name `trt` (`trt.BuilderFlag.X`), and every other
  attribute used in the TensorRT modules that is neither our own nor a known pycuda/NumPy/stdlib name.
"""

from __future__ import annotations

import ast
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

BINDINGS_WHEEL = "tensorrt_cu13_bindings-11.4.0.106-*.whl"
STUBS_WHEEL = "tensorrt_stubs-10.13.0.35.1-*.whl"

# Attributes in the TensorRT modules that belong to pycuda, NumPy, Python or our own sidecar/config objects.
NOT_TENSORRT = frozenset(
    {
        # pycuda.driver
        "init", "Device", "retain_primary_context", "push", "pop", "Stream", "pagelocked_empty", "mem_alloc",
        "memcpy_htod_async", "memcpy_dtoh_async", "synchronize", "handle", "free", "Event", "record", "time_till",
        # numpy / python / pathlib / logging / json
        "dtype", "size", "ravel", "reshape", "copy", "prod", "float32", "float16", "int8", "int32", "int64",
        "bool_", "uint8", "ascontiguousarray", "nbytes", "name", "split", "get", "is_file", "read_bytes",
        "write_bytes", "write_text", "with_suffix", "suffix", "warning", "getLogger", "perf_counter", "now", "UTC",
        "isoformat", "replace", "asdict", "items", "extend", "append", "shape", "decode", "stat", "st_size",
        "lower", "join", "values", "datetime", "loads", "to_json", "rpartition", "strip", "upper", "ndarray",
        "perf_counter_ns", "cuda_driver", "driver",
        # our own objects (sidecars, configs, results, bindings)
        "inputs", "batch", "dynamic", "max", "min", "opt", "artifact", "extra", "model", "sha256", "precision_name",
        "compute_capability", "version", "major", "api_path", "profile", "workspace_gib", "timing_cache", "verbose",
        "version_compatible", "hardware_compatibility", "onnx", "fp32",
        "counted", "mostly_fp32", "is_input", "host", "device", "max_shape", "cuda", "plan", "sidecar",
        "device_index", "path_for", "commit", "mkdir", "parent", "label", "target", "settings", "is_dir",
    }
)  # fmt: skip


@dataclass
class StubIndex:
    classes: dict[str, set[str]] = field(default_factory=dict)
    deprecated: dict[str, set[str]] = field(default_factory=dict)  # class → deprecated members
    module_functions: set[str] = field(default_factory=set)

    def all_members(self) -> set[str]:
        return set().union(*self.classes.values()) if self.classes else set()

    def deprecated_everywhere(self, member: str) -> bool:
        owners = [name for name, members in self.classes.items() if member in members]
        return bool(owners) and all(member in self.deprecated.get(owner, set()) for owner in owners)


def find_wheel(folder: Path, pattern: str) -> Path | None:
    matches = sorted(folder.glob(pattern))
    return matches[-1] if matches else None


def so_strings(bindings_wheel: Path) -> set[str]:
    with zipfile.ZipFile(bindings_wheel) as wheel:
        data = wheel.read("tensorrt_bindings/tensorrt.so")
    return {m.decode("ascii") for m in re.findall(rb"[\x20-\x7e]{3,}", data)}


def in_so(name: str, strings: set[str], suffixes: set[str]) -> bool:
    return name in strings or name in suffixes


def so_suffixes(strings: set[str], limit: int = 64) -> set[str]:
    """Every tail of every short string: names the linker stored inside a longer literal."""
    return {s[i:] for s in strings if len(s) <= limit for i in range(len(s))}


def stub_index(stubs_wheel: Path) -> StubIndex:
    with zipfile.ZipFile(stubs_wheel) as wheel:
        source = wheel.read("tensorrt_bindings/tensorrt.pyi").decode("utf-8")
    tree = _parse_leniently(source)
    index = StubIndex()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            index.module_functions.add(node.name)
        if not isinstance(node, ast.ClassDef):
            continue
        members: set[str] = set()
        deprecated: set[str] = set()
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                members.add(item.name)
                doc = ast.get_docstring(item) or ""
                if "[DEPRECATED]" in doc or "Deprecated in TensorRT" in doc:
                    deprecated.add(item.name)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                members.add(item.target.id)
            elif isinstance(item, ast.Assign):
                members.update(t.id for t in item.targets if isinstance(t, ast.Name))
            elif isinstance(item, ast.ClassDef):
                members.add(item.name)
        deprecated |= _deprecated_enum_members(ast.get_docstring(node) or "")
        for item in node.body:  # properties with deprecated docstrings
            if isinstance(item, ast.FunctionDef) and any(
                isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list
            ):
                doc = ast.get_docstring(item) or ""
                if "[DEPRECATED]" in doc:
                    deprecated.add(item.name)
        index.classes[node.name] = members
        index.deprecated[node.name] = deprecated
    return index


def _parse_leniently(source: str) -> ast.Module:
    return ast.parse(repaired_stub_source(source))


def repaired_stub_source(source: str, attempts: int = 200) -> str:
    """The generated stubs contain a few signatures Python rejects (a default before a non-default argument, a
    parameter named `in`); repairing exactly those lines keeps every name and every other signature."""
    lines = source.splitlines()
    failed_before: set[int] = set()
    for _ in range(attempts):
        try:
            ast.parse("\n".join(lines))
            return "\n".join(lines) + "\n"
        except SyntaxError as exc:
            if exc.lineno is None:
                raise
            number = exc.lineno - 1
            if number in failed_before:  # e.g. a parameter named `in`: keep the name, drop the signature
                lines[number] = re.sub(r"def (\w+)\(.*\)(\s*->.*)?:", r"def \1(self, *args, **kwargs):", lines[number])
            else:
                lines[number] = re.sub(r"\s*=\s*None", "", lines[number])
            failed_before.add(number)
    raise SyntaxError("tensorrt stubs could not be parsed")


def _deprecated_enum_members(docstring: str) -> set[str]:
    """Enum members whose own entry in the "Members:" list is marked [DEPRECATED] (a line or the entry's text
    starts with it; a mention of some other deprecated API inside the text does not count)."""
    deprecated: set[str] = set()
    current: str | None = None
    for line in docstring.splitlines():
        match = re.match(r"^\s{2,}([A-Z][A-Z0-9_]+)\s*:\s*(.*)$", line)
        if match:
            current = match.group(1)
            text = match.group(2)
        else:
            text = line.strip()
        if current and text.startswith("[DEPRECATED]"):
            deprecated.add(current)
    return deprecated


@dataclass(frozen=True)
class Usage:
    qualified: set[tuple[str, ...]]  # ("BuilderFlag", "VERSION_COMPATIBLE"), ("Builder",)
    attributes: set[str]  # other attributes, e.g. create_network, execute_async_v3


def usage_in(sources: dict[str, str]) -> Usage:
    qualified: set[tuple[str, ...]] = set()
    attributes: set[str] = set()
    for text in sources.values():
        tree = ast.parse(text)
        own = _own_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            chain = _chain(node)
            if chain and chain[0] == "trt":
                if not chain[1].startswith("__"):  # trt.__version__ is the Python package's, not the API's
                    qualified.add(tuple(chain[1:3]))
            elif node.attr.startswith("__"):
                continue  # Python's own (module __version__ and the like)
            elif node.attr not in own and node.attr not in NOT_TENSORRT and not _rooted_at_self_own(node, own):
                attributes.add(node.attr)
    # Intermediate links of trt chains are attributes too (e.g. trt.Logger.WARNING → WARNING on Logger).
    return Usage(qualified, attributes)


def _chain(node: ast.AST) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return list(reversed(parts))
    return None


def _own_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            names.add(node.attr)  # our own instance state; stores on TensorRT objects are checked
    return names


def _rooted_at_self_own(node: ast.Attribute, own: set[str]) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr in own


def violations(usage: Usage, stubs: StubIndex, strings: set[str], suffixes: set[str]) -> list[str]:
    problems = []
    for chain in sorted(usage.qualified):
        owner = chain[0]
        if owner not in stubs.classes and owner not in stubs.module_functions:
            problems.append(f"trt.{owner}: not in TensorRT 10.13's stubs")
        if not in_so(owner, strings, suffixes):
            problems.append(f"trt.{owner}: not in TensorRT 11.4's bindings")
        if len(chain) == 2:
            member = chain[1]
            if owner in stubs.classes and member not in stubs.classes[owner]:
                problems.append(f"trt.{owner}.{member}: {owner} has no {member} in TensorRT 10.13")
            if member in stubs.deprecated.get(owner, set()):
                problems.append(f"trt.{owner}.{member}: deprecated in 10.x (removed in 11)")
            if not in_so(member, strings, suffixes):
                problems.append(f"trt.{owner}.{member}: {member} not in TensorRT 11.4's bindings")
    members = stubs.all_members()
    for attribute in sorted(usage.attributes):
        if attribute not in members:
            problems.append(f".{attribute}: no TensorRT 10.13 class has it (misspelled, or not TensorRT)")
        elif stubs.deprecated_everywhere(attribute):
            problems.append(f".{attribute}: deprecated in 10.x (removed in 11)")
        if not in_so(attribute, strings, suffixes):
            problems.append(f".{attribute}: not in TensorRT 11.4's bindings")
    return problems


def extract_stubs(stubs_wheel: Path, destination: Path) -> Path:
    """Write the stubs' `tensorrt` and `tensorrt_bindings` packages, repaired, for mypy's MYPYPATH."""
    with zipfile.ZipFile(stubs_wheel) as wheel:
        for member in wheel.namelist():
            if member.endswith(".pyi") and member.split("/")[0] in {"tensorrt", "tensorrt_bindings"}:
                target = destination / member
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(repaired_stub_source(wheel.read(member).decode("utf-8")), encoding="utf-8")
    return destination
