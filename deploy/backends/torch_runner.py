"""Eager PyTorch behind the Runner interface: the reference every deployed artifact is compared against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from deploy.backends.base import Runner, TensorMeta

if TYPE_CHECKING:
    from deploy.backends.timing import BenchConfig, GpuStages


class TorchRunner(Runner):
    name = "torch"

    def __init__(
        self,
        module: nn.Module,
        *,
        inputs: Sequence[TensorMeta],
        output_names: Sequence[str],
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.module = module
        self._inputs = tuple(inputs)
        self._output_names = tuple(output_names)
        self.device = torch.device(device)
        self.dtype = dtype  # float16: every layer computes and stores in FP16 (outputs are returned as FP32)

    def activate(self) -> None:
        self.module.eval().to(self.device, self.dtype)

    def deactivate(self) -> None:
        # The module belongs to the caller; only the device or dtype copy we made is ours to release.
        if self.device.type != "cpu" or self.dtype != torch.float32:
            self.module.to("cpu", torch.float32)

    @property
    def inputs(self) -> tuple[TensorMeta, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorMeta, ...]:
        return tuple(TensorMeta(name, (), "float32") for name in self._output_names)

    def gpu_stages(self, feeds: Sequence[Mapping[str, np.ndarray]], config: BenchConfig) -> GpuStages | None:
        if self.device.type != "cuda":
            return None
        from deploy.backends.cuda_timing import measure_eager_cuda

        return measure_eager_cuda(self.module, self._inputs[0].name, feeds, config)

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [
            torch.from_numpy(np.ascontiguousarray(feed[meta.name])).to(self.device, self.dtype) for meta in self._inputs
        ]
        with torch.inference_mode():
            result = self.module(*args)
        tensors = result if isinstance(result, tuple | list) else (result,)
        return {
            name: tensor.detach().to("cpu", torch.float32).numpy().copy()
            for name, tensor in zip(self._output_names, tensors, strict=True)
        }
