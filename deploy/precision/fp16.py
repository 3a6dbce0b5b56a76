"""FP16 by ModelOpt AutoCast: nodes whose reference activations overflow FP16 stay FP32; I/O stays FP32."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from deploy.errors import ExportFailed, first_line
from deploy.lazy import require
from deploy.precision.modelopt_run import private_copy, quiet
from deploy.precision.typing_info import high_precision_compute_nodes


@dataclass(frozen=True)
class Fp16Result:
    model: onnx.ModelProto
    high_precision_nodes: tuple[str, ...]


def convert_fp16(source: Path, *, input_name: str, reference_inputs: np.ndarray) -> Fp16Result:
    """AutoCast `source` to FP16, judging overflow from a reference run on real (calibration) images."""
    autocast = require("modelopt.onnx.autocast", purpose="FP16 conversion (ModelOpt AutoCast)")
    with tempfile.TemporaryDirectory(prefix="deploy-autocast-") as scratch:
        private = private_copy(source, Path(scratch))  # AutoCast does not write to its input today; PTQ does
        data_path = Path(scratch) / "reference.npz"
        arrays: dict[str, Any] = {input_name: reference_inputs}
        np.savez(data_path, **arrays)
        try:
            with quiet("ModelOpt AutoCast"):
                model = autocast.convert_to_mixed_precision(
                    onnx_path=str(private),
                    low_precision_type="fp16",
                    keep_io_types=True,
                    calibration_data=str(data_path),
                    providers=["cpu"],
                )
        except Exception as exc:  # AutoCast raises plain exceptions from graph passes and Polygraphy
            raise ExportFailed(
                f"ModelOpt AutoCast failed on {source}: {first_line(exc)}",
                hint="rerun with --debug; --fp32 and --int8 builds are independent of this one",
            ) from exc
    return Fp16Result(model, high_precision_compute_nodes(model))
