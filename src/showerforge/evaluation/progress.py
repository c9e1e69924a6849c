"""Progress of an evaluation's steps on stderr, for the command line.

:class:`StepProgress` is the ``progress(step, done, total)`` callback of
:func:`~showerforge.evaluation.showers.report.evaluate_files`: every step (reading each file,
each classifier's epochs, each bootstrap, the NPLM toys) gets the campaigns' progress bar
(:class:`showerforge.simulate.shards.ProgressBar`): a rich bar on a terminal, elsewhere (a log
file, a batch job) a plain line when the step starts, every 30 s and when it ends.
"""

from __future__ import annotations

from types import TracebackType

from showerforge.simulate.shards import ProgressBar

__all__ = ["StepProgress", "step_unit"]


def step_unit(step: str) -> str:
    """What a step counts: classifier ``epochs``, bootstrap ``histograms``, NPLM ``toys``, else ``showers``."""
    if "classifier" in step:
        return "epochs"
    if step.startswith("bootstrap"):
        return "histograms"
    if step.startswith("NPLM"):
        return "toys"
    return "showers"


class StepProgress:
    """One progress bar per step, the previous one closed when the next step starts.

    Use as a context manager (the last bar is closed on exit) and pass it as ``progress``.

    Args:
        enabled: show anything at all (False: a silent callback).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._step: str | None = None
        self._bar: ProgressBar | None = None
        self._done = -1

    def __call__(self, step: str, done: int, total: int) -> None:
        """Report ``done`` of ``total`` in ``step`` (a new step name starts a new bar)."""
        if not self.enabled:
            return
        if step != self._step or self._bar is None:
            self.close()
            self._bar = ProgressBar(total, 0, True, step, step_unit(step)).__enter__()
            self._step = step
        elif done == self._done:
            return
        self._done = done
        self._bar.update(done)

    def close(self) -> None:
        """Close the current bar (a no-op without one)."""
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
        self._bar, self._step, self._done = None, None, -1

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
