"""showerforge: fast simulation for particle physics.

Geant4 / Pythia8 references, generative surrogates, CaloChallenge / JetNet evaluation.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
