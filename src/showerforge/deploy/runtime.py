"""onnxruntime backend: run an exported shower graph with the noise PyTorch would draw.

:class:`OnnxShowerSampler` exports a loaded model in the ``calochallenge`` layout (in memory),
opens it in onnxruntime and samples like :func:`showerforge.generate.calo_voxels.sample_array`: the
same seeded ``torch.Generator``, the same slices, the same ``model.draw_noise`` calls, so the same
seed gives the same noise, and the showers of both backends agree within float tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from showerforge.deploy.session import execution_providers, make_session
from showerforge.generate.common import register_shower_sampler

__all__ = ["execution_providers", "make_session", "OnnxShowerSampler"]


class OnnxShowerSampler:
    """A shower model exported in memory and run in onnxruntime, sampling like ``sample_array``.

    Args:
        surrogate: a loaded shower model (``sf.load(...)``).
        steps, solver: the ODE sampler (default: the model's).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (see :func:`execution_providers`).
        threads: intra-op threads (default: ``torch.get_num_threads()``).
    """

    def __init__(
        self,
        surrogate: Any,
        *,
        steps: int | None = None,
        solver: str | None = None,
        device: str | torch.device = "cpu",
        threads: int | None = None,
    ) -> None:
        from showerforge.deploy.export import check_model_layout, loaded, onnx_bytes
        from showerforge.generate.common import resolve_sampler

        self.surrogate = loaded(surrogate)
        check_model_layout(self.surrogate, "calochallenge")
        self.solver, self.steps = resolve_sampler(self.surrogate, solver, steps)
        self.device = str(device)
        self.model_bytes = onnx_bytes(self.surrogate, layout="calochallenge", steps=self.steps, solver=self.solver)
        self.session = make_session(self.model_bytes, device=device, threads=threads)
        self._noise_device = self.surrogate.device  # a property that walks the parameters: read once
        self._on_cpu = self.provider == "CPUExecutionProvider"

    @property
    def provider(self) -> str:
        """The execution provider onnxruntime runs on."""
        return str(self.session.get_providers()[0])

    def run(self, noise: np.ndarray, incident_mev: np.ndarray) -> np.ndarray:
        """One graph call: noise (N, n_noise) float32, incident (N,) MeV -> showers (N, n_voxels) MeV."""
        feeds = {
            "noise": np.ascontiguousarray(noise, dtype=np.float32),
            "incident_energy": np.asarray(incident_mev, dtype=np.float32).reshape(-1, 1),
        }
        return np.asarray(self.session.run(None, feeds)[0])

    def sample(
        self,
        incident_mev: np.ndarray,
        *,
        seed: int = 0,
        batch_size: int = 1000,
        progress: Callable[[int], Any] | None = None,
    ) -> np.ndarray:
        """Showers (N, n_voxels) float32 MeV, CaloChallenge order; the noise of ``sample_array``.

        Incident energies pass to the graph as float32 (the torch backend keeps float64 until its
        condition), so energies that float32 does not represent exactly differ by < 1e-7 relative.
        """
        from showerforge.generate.common import CPU_SLICE

        inc = np.asarray(incident_mev, dtype=np.float64).reshape(-1)
        model = self.surrogate.model
        gen = torch.Generator(device=self._noise_device).manual_seed(int(seed))
        like = torch.zeros(1, dtype=torch.float32, device=self._noise_device)
        out = np.empty((inc.size, self.surrogate.preprocessing.n_voxels), dtype=np.float32)
        for lo in range(0, inc.size, batch_size):
            hi = min(lo + batch_size, inc.size)
            step = min(hi - lo, CPU_SLICE) if self._on_cpu else hi - lo
            for a in range(lo, hi, step):
                b = min(a + step, hi)
                noise = model.draw_noise(b - a, generator=gen, like=like)
                flat = torch.cat([t.reshape(b - a, -1) for t in noise], dim=1).cpu().numpy()
                out[a:b] = self.run(flat, inc[a:b])
            if progress is not None:
                progress(hi - lo)
        return out


register_shower_sampler("onnxruntime", OnnxShowerSampler)
