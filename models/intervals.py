"""Confidence intervals for success counts: one rate (Wilson) and the difference of two (Agresti-Caffo).

Decision benchmarks report successes out of 50-200 episodes; at those counts the normal
("Wald") interval is too narrow and can leave [0, 1]. Wilson's score interval keeps its
coverage near the nominal level for small n and rates near 0 or 1, and Agresti and Caffo's
"add one success and one failure to each group" makes the Wald interval of a difference of
two rates do the same (Agresti & Caffo 2000). Pure Python: the normal quantile comes from
`statistics.NormalDist`.
"""
from __future__ import annotations

import math
from statistics import NormalDist


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _check_counts(successes: int, trials: int, name: str = "") -> None:
    label = f"{name}: " if name else ""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"{label}need 0 <= successes <= trials and trials >= 1, got {successes} of {trials}")


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high) Wilson score interval of a success rate."""
    _check_counts(successes, trials)
    z = _z(confidence)
    rate = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1.0 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def agresti_caffo_interval(successes_a: int, trials_a: int, successes_b: int, trials_b: int,
                           confidence: float = 0.95) -> tuple[float, float]:
    """(low, high) interval of rate_a - rate_b: the Wald interval after adding 1 success and 1 failure to each."""
    _check_counts(successes_a, trials_a, "a")
    _check_counts(successes_b, trials_b, "b")
    z = _z(confidence)
    rate_a = (successes_a + 1) / (trials_a + 2)
    rate_b = (successes_b + 1) / (trials_b + 2)
    half = z * math.sqrt(rate_a * (1 - rate_a) / (trials_a + 2) + rate_b * (1 - rate_b) / (trials_b + 2))
    difference = rate_a - rate_b
    return max(-1.0, difference - half), min(1.0, difference + half)


def format_rate(successes: int, trials: int, confidence: float = 0.95) -> str:
    """"0.62 [0.52, 0.71] (62/100)": the rate, its Wilson interval and the counts."""
    low, high = wilson_interval(successes, trials, confidence)
    return f"{successes / trials:.2f} [{low:.2f}, {high:.2f}] ({successes}/{trials})"


def format_difference(successes_a: int, trials_a: int, successes_b: int, trials_b: int,
                      confidence: float = 0.95) -> str:
    """"+0.12 [-0.01, 0.25]": rate_a - rate_b and its Agresti-Caffo interval."""
    low, high = agresti_caffo_interval(successes_a, trials_a, successes_b, trials_b, confidence)
    return f"{successes_a / trials_a - successes_b / trials_b:+.2f} [{low:+.2f}, {high:+.2f}]"
