"""The batch quality score: one number an alert or a dashboard can threshold.

Four pass rates, each the share of rows read that broke no rule of its kind,
weighted into 0-100. A row breaking rules of two kinds counts against both,
so the score says *what* is wrong with a batch, not only how much.
"""

from __future__ import annotations

from dataclasses import dataclass

WEIGHTS: dict[str, float] = {
    "completeness": 0.25,
    "validity": 0.25,
    "uniqueness": 0.25,
    "integrity": 0.25,
}


@dataclass(frozen=True)
class Quality:
    score: float
    components: dict[str, float]


def score(rows_read: int, failures: dict[str, int]) -> Quality:
    """``failures[k]``: rows failing at least one rule of category ``k``."""
    if rows_read <= 0:
        return Quality(100.0, {k: 1.0 for k in WEIGHTS})
    comps = {
        k: max(0.0, 1.0 - failures.get(k, 0) / rows_read) for k in WEIGHTS
    }
    total = 100.0 * sum(WEIGHTS[k] * comps[k] for k in WEIGHTS)
    return Quality(round(total, 2), {k: round(v, 6) for k, v in comps.items()})
