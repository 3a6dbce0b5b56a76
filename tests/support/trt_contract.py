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
import dataclasses
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

BINDINGS_WHEEL = "tensorrt_cu13_bindings-11.4.0.106-*.whl"
STUBS_WHEEL = "tensorrt_stubs-10.13.0.35.1-*.whl"

# Attributes in the TensorRT modules that belong to pycuda, NumPy, Python or our own sidecar/config objects.
NOT_TENSORRT = frozenset(
    {
        # pycuda.driver (before deploy.cuda) and deploy.cuda's facade
        "init", "Device", "retain_primary_context", "push", "pop", "Stream", "pagelocked_empty", "mem_alloc",
        "memcpy_htod_async", "memcpy_dtoh_async", "synchronize", "handle", "free", "Event", "record", "time_till",
        "open", "close", "pinned", "alloc", "array", "ptr", "copy_to_device", "copy_to_host", "stream", "event",
        "elapsed_ms", "isdigit",
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


# --- the real bindings, imported against an inert stand-in for libnvinfer ------------------------------------------

REAL_BINDINGS = {"11.4": "tensorrt_cu13_bindings-11.4.0.106-*.whl", "10.16": "tensorrt_cu13_bindings-10.16.1.11-*.whl"}
# The C symbols tensorrt.so imports from libnvinfer, libnvinfer_plugin and libnvonnxparser (nm -D --undefined-only;
# the same nine in 10.16 and 11.4). A new one is found from the loader's "undefined symbol" error and added.
STANDIN_SYMBOLS = (
    "createInferBuilder_INTERNAL", "createInferRefitter_INTERNAL", "createInferRuntime_INTERNAL",
    "createNvOnnxParserRefitter_INTERNAL", "createNvOnnxParser_INTERNAL", "getBuilderPluginRegistry",
    "getNvOnnxParserVersion", "getPluginRegistry", "initLibNvInferPlugins",
)  # fmt: skip
STANDIN_LIBRARIES = ("libnvinfer", "libnvinfer_plugin", "libnvonnxparser")

# Run in a fresh interpreter with the stand-in on LD_LIBRARY_PATH: import the real module, read (never call) every
# class, member, enum value and docstring, print JSON.
_DUMP = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import tensorrt as t
api = {"classes": {}, "functions": {}}
def describe(cls):
    members = {}
    for name in dir(cls):
        if name.startswith("_") and name != "__init__":
            continue
        raw = None
        for klass in cls.__mro__:
            if name in vars(klass):
                raw = vars(klass)[name]
                break
        if isinstance(raw, property):
            members[name] = {"kind": "property", "doc": (raw.fget.__doc__ or "") if raw.fget else "",
                             "writable": raw.fset is not None}
        elif isinstance(raw, type):
            members[name] = {"kind": "class", "name": raw.__name__}
        elif isinstance(raw, cls) or (raw is not None and type(raw).__name__ == getattr(raw, "__class__", type).__name__
                                       and hasattr(raw, "name") and hasattr(raw, "value")):
            members[name] = {"kind": "value", "type": type(raw).__name__}
        elif callable(raw) or type(raw).__name__ in ("instancemethod", "builtin_function_or_method", "staticmethod"):
            fn = raw.__func__ if isinstance(raw, staticmethod) else raw
            members[name] = {"kind": "method", "doc": getattr(fn, "__doc__", "") or "",
                             "static": isinstance(raw, staticmethod)}
        else:
            members[name] = {"kind": "value", "type": type(raw).__name__}
    enum = list(cls.__members__) if hasattr(cls, "__members__") else None
    return {"bases": [k.__name__ for k in cls.__mro__], "members": members, "enum": enum}
for name in dir(t):
    obj = getattr(t, name)
    if isinstance(obj, type):
        api["classes"][name] = describe(obj)
    elif callable(obj):
        api["functions"][name] = getattr(obj, "__doc__", "") or ""
json.dump(api, sys.stdout)
"""


def build_standin(folder: Path, majors: tuple[int, ...], symbols: tuple[str, ...] = STANDIN_SYMBOLS) -> Path:
    """An inert shared library that defines `symbols` (each returns 0) under every name tensorrt.so links against.
    It exists so the loader can resolve the bindings' imports; nothing in it is ever meant to run."""
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "standin.c"
    source.write_text(
        "/* Inert stand-in for libnvinfer: lets the loader resolve tensorrt.so's imports. Never called. */\n"
        + "".join(f"void *{symbol}(void) {{ return 0; }}\n" for symbol in symbols)
    )
    library = folder / "libstandin.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True, capture_output=True)
    for major in majors:
        for name in STANDIN_LIBRARIES:
            link = folder / f"{name}.so.{major}"
            link.unlink(missing_ok=True)
            link.symlink_to(library.name)
    return library


def load_real_api(wheel: Path, work: Path) -> dict[str, object]:
    """The real bindings' API, read in a subprocess that imports `tensorrt.so` from `wheel` with the stand-in."""
    import json
    import os
    import subprocess
    import sys

    package = work / "bindings"
    with zipfile.ZipFile(wheel) as archive:
        so = archive.read("tensorrt_bindings/tensorrt.so")
    package.mkdir(parents=True, exist_ok=True)
    (package / "tensorrt.so").write_bytes(so)
    majors = (10, 11)
    symbols = STANDIN_SYMBOLS
    for _ in range(20):  # each round names one more undefined symbol, if a new version imports one
        build_standin(work / "standin", majors, symbols)
        env = {**os.environ, "LD_LIBRARY_PATH": str(work / "standin")}
        result = subprocess.run(
            [sys.executable, "-c", _DUMP, str(package)], env=env, capture_output=True, text=True, timeout=120
        )
        if result.returncode == 0:
            return dict(json.loads(result.stdout))
        missing = re.search(r"undefined symbol: (\w+)", result.stderr)
        if missing is None:
            raise RuntimeError(f"the real bindings in {wheel.name} would not import: {result.stderr[-2000:]}")
        symbols = (*symbols, missing.group(1))
    raise RuntimeError("the stand-in never satisfied the bindings' imports")


@dataclass(frozen=True)
class Param:
    name: str
    required: bool
    keyword: bool = True  # False: positional-only
    positional: bool = True  # False: keyword-only
    star: str = ""  # "*" for *args, "**" for **kwargs


@dataclass(frozen=True)
class Overload:
    text: str
    params: tuple[Param, ...]
    returns: str

    def accepts(self, positional: int, keywords: tuple[str, ...]) -> str | None:
        """None if a call with `positional` arguments (self excluded) and `keywords` binds; else why not."""
        params = list(self.params)
        if params and params[0].name in ("self", "arg0") and not params[0].star:
            params = params[1:]
        varargs = any(p.star == "*" for p in params)
        varkw = any(p.star == "**" for p in params)
        slots = [p for p in params if p.positional and not p.star]
        if positional > len(slots) and not varargs:
            return f"takes at most {len(slots)} positional arguments, given {positional}"
        bound = {p.name for p in slots[:positional]}
        by_name = {p.name: p for p in params if not p.star}
        for keyword in keywords:
            param = by_name.get(keyword)
            if param is None or not param.keyword:
                if not varkw:
                    return f"has no keyword {keyword!r}"
            elif keyword in bound:
                return f"gets {keyword!r} twice"
            bound.add(keyword)
        missing = [p.name for p in params if p.required and not p.star and p.name not in bound]
        return f"misses {', '.join(missing)}" if missing else None


def overloads(name: str, doc: str) -> list[Overload]:
    """pybind11's signature lines (`name(a: T, b: T = x) -> R`, numbered when overloaded) from a docstring."""
    found = []
    for line in doc.splitlines():
        match = re.match(rf"^\s*(?:\d+\.\s*)?{re.escape(name)}\((.*)\)\s*->\s*(.*)$", line)
        if match:
            found.append(Overload(line.strip(), _params(match.group(1)), match.group(2).strip()))
    if not found and re.match(r"^\s*\(.*\)\s*->", doc or ""):  # a property getter's doc has no name
        match = re.match(r"^\s*\((.*)\)\s*->\s*(.*)$", doc.splitlines()[0])
        if match:
            found.append(Overload(doc.splitlines()[0], _params(match.group(1)), match.group(2).strip()))
    return found


def _params(text: str) -> tuple[Param, ...]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    params: list[Param] = []
    keyword_only = False
    for part in parts:
        if part == "/":
            params = [dataclasses.replace(p, keyword=False) for p in params]
            continue
        if part == "*":
            keyword_only = True
            continue
        star = "**" if part.startswith("**") else "*" if part.startswith("*") else ""
        name = part.lstrip("*").split(":")[0].split("=")[0].strip()
        unnamed = re.fullmatch(r"arg\d+", name) is not None  # pybind's unnamed arguments bind by position only
        required = "=" not in part and not star
        params.append(Param(name, required, keyword=not unnamed, positional=not keyword_only, star=star))
        if star == "*":
            keyword_only = True
    return tuple(params)


def returned_class(annotation: str) -> str | None:
    """`tensorrt.X`, `tensorrt.X | None` or `Optional[tensorrt.X]` → X; anything else (lists, unions) → None."""
    match = re.fullmatch(r"(?:typing\.)?(?:Optional\[)?tensorrt\.(\w+)\]?(?:\s*\|\s*None)?", annotation.strip())
    return match.group(1) if match else None


# --- every TensorRT use in our code against one real API ------------------------------------------------------------


@dataclass
class CallCheck:
    """What checking our code against one real API found: problems, and the (class, member) pairs it could check
    with a known receiver type (so a test can insist the important calls were really checked, not skipped)."""

    version: str
    problems: list[str] = field(default_factory=list)
    resolved: set[tuple[str, str]] = field(default_factory=set)


def _trt_class(node: ast.expr | None, classes: dict[str, object]) -> str | None:
    """`trt.X`, `trt.X | None` as an annotation → X (if the API has it)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _trt_class(node.left, classes) or _trt_class(node.right, classes)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "trt":
        return node.attr if node.attr in classes else None
    return None


def _guard(test: ast.expr) -> tuple[str, int] | None:
    """`<x>.major == 10` style version guards: (operator, major)."""
    ops = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
    if (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Attribute)
        and test.left.attr == "major"
        and len(test.ops) == 1
        and type(test.ops[0]) in ops
        and isinstance(test.comparators[0], ast.Constant)
        and isinstance(test.comparators[0].value, int)
    ):
        return ops[type(test.ops[0])], test.comparators[0].value
    return None


def _holds(guard: tuple[str, int], major: int) -> bool:
    op, value = guard
    return {
        "==": major == value, "!=": major != value, "<": major < value,
        "<=": major <= value, ">": major > value, ">=": major >= value,
    }[op]  # fmt: skip


class _Checker:
    def __init__(self, api: dict[str, Any], version: str, check: CallCheck) -> None:
        self.classes: dict[str, Any] = api["classes"]
        self.functions: dict[str, str] = api["functions"]
        self.major = int(version.split(".")[0])
        self.check = check
        self.all_members = {m for c in self.classes.values() for m in c["members"]} | {
            e for c in self.classes.values() for e in (c["enum"] or [])
        }
        self.returns: dict[str, str] = {}  # our own functions that return a TensorRT object
        self.file = ""

    def member(self, cls: str, name: str) -> dict[str, Any] | None:
        info = self.classes.get(cls)
        if info is None:
            return None
        if name in info["members"]:
            return dict(info["members"][name])
        if info["enum"] and name in info["enum"]:
            return {"kind": "value"}
        return None

    def problem(self, node: ast.AST, text: str) -> None:
        self.check.problems.append(f"{self.file}:{getattr(node, 'lineno', 0)} {text} (TensorRT {self.check.version})")

    def infer(self, node: ast.expr, env: dict[str, str], own: dict[str, str]) -> str | None:
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return own.get(node.attr)
            receiver = self.infer(node.value, env, own)
            found = self.member(receiver, node.attr) if receiver else None
            if found and found["kind"] == "property":
                signatures = overloads("", found["doc"])
                return returned_class(signatures[0].returns) if signatures else None
            return None
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "trt":
                return func.attr if func.attr in self.classes else None
            if isinstance(func, ast.Name):
                return self.returns.get(func.id)
            if isinstance(func, ast.Attribute):
                receiver = self.infer(func.value, env, own)
                found = self.member(receiver, func.attr) if receiver else None
                if found and found["kind"] == "method":
                    signatures = overloads(func.attr, found["doc"])
                    return returned_class(signatures[0].returns) if signatures else None
        return None

    def call(self, node: ast.Call, cls: str, name: str, doc: str, *, label: str) -> None:
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            return
        signatures = overloads(name, doc)
        if not signatures:
            return
        keywords = tuple(k.arg for k in node.keywords if k.arg is not None)
        reasons = [s.accepts(len(node.args), keywords) for s in signatures]
        if all(reasons):
            shown = "; ".join(s.text for s in signatures)
            self.problem(node, f"{label}: {reasons[0]} [{shown}]")

    def visit_function(self, function: ast.FunctionDef, own: dict[str, str]) -> None:
        env: dict[str, str] = {}
        for arg in [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]:
            cls = _trt_class(arg.annotation, self.classes)
            if cls:
                env[arg.arg] = cls
        for _ in range(3):  # assignments in any order: a few rounds reach the fixed point for code this size
            for node in ast.walk(function):
                if isinstance(node, ast.Assign | ast.AnnAssign):
                    value = node.value
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    cls = self.infer(value, env, own) if value is not None else None
                    if isinstance(node, ast.AnnAssign):
                        cls = _trt_class(node.annotation, self.classes) or cls
                    for target in targets:
                        if cls and isinstance(target, ast.Name):
                            env[target.id] = cls
        for statement in function.body:
            self.visit(statement, env, own)

    def visit(self, node: ast.AST, env: dict[str, str], own: dict[str, str]) -> None:
        if isinstance(node, ast.If) and (guard := _guard(node.test)) is not None:
            for child in node.body if _holds(guard, self.major) else node.orelse:
                self.visit(child, env, own)
            return
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            return  # visited on their own
        if isinstance(node, ast.Call):
            self.visit_call(node, env, own)
        if isinstance(node, ast.Attribute):
            self.visit_attribute(node, env, own)
        for child in ast.iter_child_nodes(node):
            self.visit(child, env, own)

    def visit_call(self, node: ast.Call, env: dict[str, str], own: dict[str, str]) -> None:
        func = node.func
        if not isinstance(func, ast.Attribute):
            return
        if isinstance(func.value, ast.Name) and func.value.id == "trt":
            init = self.member(func.attr, "__init__")
            if init is not None:
                self.check.resolved.add((func.attr, "__init__"))
                self.call(node, func.attr, "__init__", init.get("doc", ""), label=f"trt.{func.attr}(...)")
            return
        receiver = self.infer(func.value, env, own)
        if receiver is None:
            return
        found = self.member(receiver, func.attr)
        if found is not None and found["kind"] == "method":
            self.check.resolved.add((receiver, func.attr))
            self.call(node, receiver, func.attr, found["doc"], label=f"{receiver}.{func.attr}(...)")

    def visit_attribute(self, node: ast.Attribute, env: dict[str, str], own: dict[str, str]) -> None:
        chain = _chain(node)
        if chain and chain[0] == "trt":
            if len(chain) >= 2 and chain[1].startswith("__"):
                return
            if len(chain) == 2 and chain[1] not in self.classes and chain[1] not in self.functions:
                self.problem(node, f"trt.{chain[1]}: not in the bindings")
            if len(chain) == 3 and chain[1] in self.classes and self.member(chain[1], chain[2]) is None:
                self.problem(node, f"trt.{chain[1]}.{chain[2]}: {chain[1]} has no {chain[2]}")
            return
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "trt"):
            return
        receiver = self.infer(node.value, env, own)
        if receiver is not None:
            found = self.member(receiver, node.attr)
            if found is None:
                self.problem(node, f"{receiver}.{node.attr}: {receiver} has no {node.attr}")
                return
            self.check.resolved.add((receiver, node.attr))
            if isinstance(node.ctx, ast.Store) and not (found["kind"] == "property" and found.get("writable")):
                self.problem(node, f"{receiver}.{node.attr} = ...: not a writable property")
        elif (
            node.attr not in NOT_TENSORRT
            and node.attr not in self.own_names
            and not node.attr.startswith("__")
            and node.attr not in self.all_members
        ):
            self.problem(node, f".{node.attr}: no TensorRT class has it (misspelled, or not TensorRT)")

    own_names: ClassVar[set[str]] = set()


def check_against_api(sources: dict[str, str], api: dict[str, Any], version: str) -> CallCheck:
    """Every TensorRT use in `sources` ({file name: text}) against the real API of `version`: classes, enum members,
    methods and constructors (arity, keyword names, per overload), property reads and writes (writable), with
    version guards (`if about.major == 10:`) honoured. Receiver types come from `trt.X` annotations, constructors
    and the bindings' own return annotations."""
    check = CallCheck(version)
    checker = _Checker(api, version, check)
    trees = {name: ast.parse(text) for name, text in sources.items()}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                cls = _trt_class(node.returns, checker.classes)
                if cls:
                    checker.returns[node.name] = cls
    for name, tree in trees.items():
        checker.file = name
        _Checker.own_names = _own_names(tree)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                checker.visit_function(node, {})
            elif isinstance(node, ast.ClassDef):
                own: dict[str, str] = {}
                for item in ast.walk(node):
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Attribute):
                        cls = _trt_class(item.annotation, checker.classes)
                        if cls:
                            own[item.target.attr] = cls
                    if isinstance(item, ast.FunctionDef) and any(
                        isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list
                    ):
                        cls = _trt_class(item.returns, checker.classes)
                        if cls:
                            own[item.name] = cls
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        checker.visit_function(item, own)
            else:
                checker.visit(node, {}, {})
    return check
