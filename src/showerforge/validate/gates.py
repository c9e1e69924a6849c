"""Gates: thresholds on validation metrics, e.g. ``auc_high <= 0.65`` or ``chi2_ndf("etot_over_einc") <= 4``.

Grammar (one gate per string)::

    METRIC OP NUMBER            auc_high <= 0.65,  w1m_ratio <= 3,  ks_p_min >= 0.01
    FUNC("HISTOGRAM") OP NUMBER chi2_ndf("etot_over_einc") <= 4,  ks_p("jet_mass") >= 0.001

with ``OP`` one of ``<=``, ``<``, ``>=``, ``>``. A gate compares the central value of the metric
with the threshold (a value exactly at a ``<=`` / ``>=`` threshold passes); the uncertainty is
shown beside it but does not move the verdict, so that the same numbers always give the same
verdict. Nothing is evaluated as Python.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from showerforge.errors import UserError

__all__ = ["HISTOGRAM_FUNCTIONS", "Gate", "parse_gate"]

#: functions of one histogram name usable in gates (keys of the per-histogram comparison)
HISTOGRAM_FUNCTIONS = ("chi2_ndf", "ks_p", "max_pull")

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}

_GATE = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*
        (?:\(\s*(?P<q>["'])(?P<arg>[^"']+)(?P=q)\s*\))?\s*
        (?P<op><=|>=|<|>)\s*
        (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Gate:
    """One threshold.

    Attributes:
        expr: the gate as written.
        metric: metric name (``auc_high``) or histogram function (``chi2_ndf``).
        histogram: the histogram of a function gate, else None.
        op: ``<=``, ``<``, ``>=`` or ``>``.
        threshold: the number on the right.
    """

    expr: str
    metric: str
    histogram: str | None
    op: str
    threshold: float

    @property
    def key(self) -> str:
        """The name of the value it reads: ``auc_high`` or ``chi2_ndf(etot_over_einc)``."""
        return self.metric if self.histogram is None else f"{self.metric}({self.histogram})"

    @property
    def lower_is_better(self) -> bool:
        return self.op in ("<=", "<")

    def passes(self, value: float | None) -> bool:
        """Whether ``value`` satisfies the gate (a missing or NaN value fails)."""
        if value is None or not math.isfinite(value):
            return False
        return bool(_OPS[self.op](float(value), self.threshold))


def parse_gate(expr: str, where: str = "gate") -> Gate:
    """Parse one gate string; ``where`` names its origin (``suite.toml: gates[2]``) in errors.

    Raises:
        UserError: not of the form ``METRIC OP NUMBER`` / ``FUNC("HISTOGRAM") OP NUMBER``.
    """
    m = _GATE.match(str(expr))
    if m is None:
        raise UserError(
            f"{where}: {expr!r} is not a gate; expected METRIC OP NUMBER (auc_high <= 0.65) or "
            f'{"/".join(HISTOGRAM_FUNCTIONS)}("HISTOGRAM") OP NUMBER, with OP one of <=, <, >=, >'
        )
    name, arg = m["name"], m["arg"]
    if arg is not None and name not in HISTOGRAM_FUNCTIONS:
        raise UserError(f"{where}: {expr!r}: {name}(...) is not a histogram function; use one of {HISTOGRAM_FUNCTIONS}")
    if arg is None and name in HISTOGRAM_FUNCTIONS:
        raise UserError(f'{where}: {expr!r}: {name} needs a histogram name, e.g. {name}("etot_over_einc")')
    threshold = float(m["num"])
    if not math.isfinite(threshold):
        raise UserError(f"{where}: {expr!r}: the threshold must be a finite number")
    return Gate(expr=str(expr).strip(), metric=name, histogram=arg, op=m["op"], threshold=threshold)
