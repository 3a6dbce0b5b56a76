"""The OpenVINO target: the typed ONNX converted to OpenVINO IR, run by OpenVINO's CPU plugin.

INT8 comes from the same U8S8 QDQ ONNX as ONNX Runtime's (its 7-bit weights keep OpenVINO's AVX2 kernels exact
too); FP16 stores FP16 weights and computes in BF16 or FP16 where the CPU has them (AMX / AVX512-BF16, ARM FP16),
else in FP32. FP32 and INT8 pin FP32 for the layers that stay in float, so parity does not depend on the CPU.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path

from deploy.backends.base import Runner
from deploy.errors import ExportFailed, MissingDependency
from deploy.files import sha256_file
from deploy.lazy import require
from deploy.sidecar import FileDigest, Sidecar, TargetInfo, load_sidecar, sidecar_path
from deploy.targets.base import Check, Compiled, CompileRequest, Progress, Target, TritonModelFiles


class OpenVino(Target):
    name = "openvino"
    suffix = ".xml"
    int8_recipe = "cpu"
    triton = TritonModelFiles(platform=None, backend="openvino", filenames=("model.xml", "model.bin"))

    def runner(self, artifact: Path, *, threads: int | None = None, sidecar: Sidecar | None = None) -> Runner:
        from deploy.targets.openvino.runner import OpenVinoRunner, precision_hint

        if sidecar is None and sidecar_path(artifact).is_file():
            sidecar = load_sidecar(artifact, check_hash=False)
        return OpenVinoRunner(
            artifact,
            threads=threads,
            precision=precision_hint(sidecar.label.precision if sidecar else "fp32"),
            output_names=[o.name for o in sidecar.outputs] if sidecar else (),
        )

    def availability(self) -> tuple[bool, str]:
        try:
            openvino = require("openvino", purpose="the OpenVINO target")
        except MissingDependency as exc:
            return False, f"{exc.message}; {exc.hint}"
        return True, f"OpenVINO {openvino.__version__} compiles IR (.xml + .bin)"

    def compile(self, request: CompileRequest, *, progress: Progress | None = None) -> Compiled:
        openvino = require("openvino", purpose="the OpenVINO target")
        started = time.perf_counter()
        xml = request.work_dir / self.artifact_name(request.onnx)
        weights = xml.with_suffix(".bin")
        compress = request.sidecar.label.precision == "fp16"
        try:
            model = openvino.convert_model(str(request.onnx))
            openvino.save_model(model, str(xml), compress_to_fp16=compress)
        except Exception as exc:  # OpenVINO's converter raises its own untyped errors
            raise ExportFailed(
                f"OpenVINO could not convert {request.onnx}: {exc}", hint="rerun with --debug for the full log"
            ) from exc
        seconds = time.perf_counter() - started
        source = request.sidecar
        sidecar = dataclasses.replace(
            source,
            artifact=xml.name,
            sha256=sha256_file(xml),
            size_bytes=xml.stat().st_size + weights.stat().st_size,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            parity=None,
            label=dataclasses.replace(source.label, target=self.name),
            target=TargetInfo(
                name=self.name,
                version=str(openvino.__version__),
                source_onnx=str(request.onnx),
                source_sha256=source.sha256,
                seconds=round(seconds, 3),
                companions=(FileDigest(weights.name, sha256_file(weights), weights.stat().st_size),),
                settings={"compress_to_fp16": compress, "device": "CPU"},
            ),
        )
        return Compiled(xml, sidecar, seconds)

    def probe(self) -> tuple[Check, ...]:
        ok, line = self.availability()
        if not ok:
            return (Check("OpenVINO", False, None, line, "deploy build --target openvino, OpenVINO peers"),)
        import openvino

        capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        return (Check("OpenVINO", True, openvino.__version__, f"CPU plugin: {', '.join(capabilities)}", ""),)
