"""onnxruntime sessions: execution providers for a device and thread settings shared with torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from showerforge.errors import UserError

__all__ = ["execution_providers", "make_session"]


def execution_providers(device: str | torch.device = "cpu") -> list[str]:
    """onnxruntime execution providers for a device: CPU, or CUDA (then CPU) where it is installed.

    ``"cpu"``: the CPU provider. ``"cuda"``/``"cuda:N"``: the CUDA provider, refused when this
    onnxruntime has none. ``"auto"``: CUDA when present, else CPU.
    """
    import onnxruntime as ort

    kind = str(device).split(":")[0]
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if kind == "cpu" or (kind == "auto" and not has_cuda):
        return ["CPUExecutionProvider"]
    if kind in ("cuda", "auto"):
        if not has_cuda:
            raise UserError(
                f"--device {device}: this onnxruntime has no CUDA execution provider (it has {', '.join(available)}); "
                "install onnxruntime-gpu or use --device cpu"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise UserError(f"--device {device!r}: the onnxruntime backend runs on cpu, cuda or auto")


def make_session(model: bytes | str | Path, *, device: str | torch.device = "cpu", threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on ``device`` with ``threads`` intra-op threads.

    ``threads=None`` takes ``torch.get_num_threads()``, so one setting governs both backends (one
    thread is the fastest at batch 1: a shower graph's nodes are too small to split). Nodes run
    one after the other (``ORT_SEQUENTIAL``) after all of onnxruntime's graph optimisations.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    providers = execution_providers(device)
    options = [{"device_id": int(str(device).split(":")[1])} if ":" in str(device) else {} for _ in providers]
    return ort.InferenceSession(source, opts, providers=providers, provider_options=options)
