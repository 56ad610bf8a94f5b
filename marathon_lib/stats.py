"""Uncertainty of scores: Wilson intervals, seeded bootstrap intervals, paired tests against a base case.

One home for every interval and test the suite prints. A score here is a vectorised function of per-sample
arrays (metrics.ScoreArrays) evaluated on bootstrap resamples of the sample indices, so an interval and a
paired test use exactly the headline's own definition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z_TWO_SIDED_95 = 1.959964
Z_ONE_SIDED_95 = 1.645
BOOTSTRAP_REPLICATES = 2000
BOOTSTRAP_SEED = 0  # intervals and paired tests are reproducible: the same records give the same figures
ALPHA = 0.05


def wilson_interval(proportion: float, n: int, z: float = Z_TWO_SIDED_95) -> tuple[float, float]:
    """Wilson score interval of a proportion observed on n samples ((0, 1) when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = min(max(proportion, 0.0), 1.0)
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denominator = 1 + z2 / n
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def wilson_lower_bound(proportion: float, n: int, z: float = Z_ONE_SIDED_95) -> float:
    """One-sided Wilson score lower bound of a proportion observed on n samples (0 when n is 0)."""
    return wilson_interval(proportion, n, z)[0] if n > 0 else 0.0


def resample_indices(n: int, rng: np.random.Generator, replicates: int = BOOTSTRAP_REPLICATES) -> np.ndarray:
    """(replicates, n) sample indices drawn with replacement."""
    return rng.integers(0, n, size=(replicates, n))


def percentile_interval(replicates: np.ndarray) -> tuple[float, float]:
    """The central 95 % of bootstrap replicates."""
    low, high = np.percentile(replicates, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(low), float(high)


def bootstrap_p_value(deltas: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a paired difference: twice the smaller tail beyond 0 (at most 1)."""
    return float(min(1.0, 2.0 * min(np.mean(deltas <= 0.0), np.mean(deltas >= 0.0))))


def mcnemar_exact(base_only: int, case_only: int) -> float:
    """Exact McNemar test: two-sided binomial p-value of the discordant pairs (base right & case wrong vs the
    reverse) under p = 1/2; 1.0 when there is no discordant pair."""
    from scipy.stats import binomtest

    if base_only + case_only == 0:
        return 1.0
    return float(binomtest(case_only, base_only + case_only, 0.5).pvalue)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str  # "wilson" | "bootstrap"

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def as_list(self) -> list[float]:
        return [round(self.low, 4), round(self.high, 4)]


def combined_half_width(half_widths: Sequence[float | None]) -> float | None:
    """± of a mean of k independent scores from their own ±: sqrt(Σ h²) / k (normal approximation)."""
    present = [h for h in half_widths if h is not None]
    return math.sqrt(sum(h * h for h in present)) / len(present) if present else None
