"""Three-way verdicts on a comparison with a study: agrees, differs, or cannot tell at this size.

Every verdict is decided by the run's own uncertainty (an interval, a test's power or its sample
size) against what the study reports; `RULE` states the rule once, for the report and the docs.
"""

from __future__ import annotations

import itertools
import math
from enum import StrEnum

import numpy as np
from scipy import stats


class Verdict(StrEnum):
    """The outcome of a comparison with a study's value."""

    AGREES = "agrees"
    DIFFERS = "differs"
    CANNOT_TELL = "cannot tell"


RULE = (
    "Verdict rule. Each comparison with a study value uses this run's own uncertainty. (1) A value with a 95% "
    "interval: the run agrees when its whole interval lies inside the study's value or range (widened by the "
    "tolerance the note states), differs when its whole interval lies outside it, and cannot tell at this size "
    "when the interval straddles an edge. (2) An effect the study found (a positive difference): the run agrees "
    "when its interval excludes zero on the study's side, differs when its interval excludes the study's effect "
    "size (the run would have seen an effect that large), and cannot tell when it contains both zero and the "
    "study's effect. (3) A test outcome: a rejection is evidence at any size; a non-rejection counts only where "
    "the test's power at this sample size is at least 80% (from a simulation), else it cannot tell. (4) A "
    "quantity that moves with the sample size (a rejected fraction with fewer seeds, a maximum over fewer "
    "pairs): a value on the side that a small sample explains cannot tell. (5) A value without an interval "
    "counts only at the study's sample size or above. A pattern that chance alone produces with probability "
    ">= 5% at this size cannot tell."
)
MIN_POWER = 0.8
ALPHA = 0.05


def _finite(*values: float | None) -> bool:
    """Whether every value is a finite number."""
    return all(v is not None and math.isfinite(float(v)) for v in values)


def interval_verdict(
    lo: float,
    hi: float,
    study_lo: float,
    study_hi: float,
    tolerance: float = 0.0,
    low_side_explained_by_size: bool = False,
    high_side_explained_by_size: bool = False,
) -> Verdict:
    """Agrees when [lo, hi] lies inside [study_lo - tolerance, study_hi + tolerance], differs when it lies
    wholly outside, cannot tell otherwise or when a bound is NaN. A difference on a side flagged as explained
    by the run's small size (e.g. fewer rejections with fewer seeds) is cannot tell."""
    if not _finite(lo, hi, study_lo, study_hi):
        return Verdict.CANNOT_TELL
    a, b = study_lo - tolerance, study_hi + tolerance
    if a <= lo and hi <= b:
        return Verdict.AGREES
    if hi < a:
        return Verdict.CANNOT_TELL if low_side_explained_by_size else Verdict.DIFFERS
    if lo > b:
        return Verdict.CANNOT_TELL if high_side_explained_by_size else Verdict.DIFFERS
    return Verdict.CANNOT_TELL


def effect_verdict(lo: float, hi: float, study_effect: float | None) -> Verdict:
    """An effect the study found (sign of `study_effect`; None: only its sign, positive, is known): agrees
    when [lo, hi] excludes zero on the study's side, differs when it excludes the study's effect size (or,
    with no size, lies wholly on the other side), cannot tell when it holds both zero and the effect."""
    if not _finite(lo, hi):
        return Verdict.CANNOT_TELL
    sign = 1.0 if study_effect is None or study_effect >= 0 else -1.0
    lo, hi = sorted((sign * lo, sign * hi))
    if lo > 0:
        return Verdict.AGREES
    size = 0.0 if study_effect is None else abs(study_effect)
    if hi < size or (study_effect is None and hi < 0):
        return Verdict.DIFFERS
    return Verdict.CANNOT_TELL


def outcome_verdict(rejected: bool, study_rejected: bool, power: float | None, min_power: float = MIN_POWER) -> Verdict:
    """A test outcome against the study's: a rejection is evidence at any size; a non-rejection counts only
    where the test's power against the alternative at this size is at least `min_power` (None: unknown)."""
    if rejected:
        return Verdict.AGREES if study_rejected else Verdict.DIFFERS
    if power is None or not math.isfinite(power) or power < min_power:
        return Verdict.CANNOT_TELL
    return Verdict.DIFFERS if study_rejected else Verdict.AGREES


def point_verdict(
    value: float, study_lo: float, study_hi: float, n: float, n_study: float, tolerance: float = 0.0
) -> Verdict:
    """A value without an interval: compared with the study's range (± tolerance) only when the run's sample
    size `n` is at least the study's `n_study`; smaller runs cannot tell."""
    if not _finite(value, n, n_study) or n < n_study:
        return Verdict.CANNOT_TELL
    return interval_verdict(value, value, study_lo, study_hi, tolerance)


def chance_verdict(holds: bool, p_chance: float, alpha: float = ALPHA) -> Verdict:
    """A pattern the study found: agrees when it holds and chance alone gives it with probability below
    `alpha`, cannot tell when chance explains it at this size, differs when it does not hold."""
    if not holds:
        return Verdict.DIFFERS
    return Verdict.AGREES if _finite(p_chance) and p_chance < alpha else Verdict.CANNOT_TELL


def direction_verdict(p_same: float, p_opposite: float, alpha: float = ALPHA) -> Verdict:
    """A direction the study found: agrees when a one-sided test in its direction rejects at `alpha`, differs
    when the opposite one-sided test does, cannot tell otherwise (NaN p-values: cannot tell)."""
    if _finite(p_same) and p_same < alpha:
        return Verdict.AGREES
    if _finite(p_opposite) and p_opposite < alpha:
        return Verdict.DIFFERS
    return Verdict.CANNOT_TELL


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval of a proportion k / n (NaN for n = 0)."""
    if n <= 0:
        return math.nan, math.nan
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def interval_from_one_sided_p(diff: float, p: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Student-t interval of a mean difference over n pairs recovered from its one-sided paired t-test
    p-value (H1: mean > 0); NaN where p is 0, 1 or NaN, the difference is 0 or n < 2."""
    if not _finite(diff, p) or n < 2 or diff == 0 or not 0 < p < 1 or abs(p - 0.5) < 1e-12:
        return math.nan, math.nan
    t = float(stats.t.isf(p, n - 1))
    if t == 0 or np.sign(t) != np.sign(diff):
        return math.nan, math.nan
    se = diff / t
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    return diff - half, diff + half


def rank_correlation_p(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """One-sided p-values (positive, negative) of Spearman's rank correlation: exact over all orderings
    for up to 8 points, the t approximation above; NaN with fewer than 2 points or no spread."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 2 or np.ptp(stats.rankdata(x)) == 0 or np.ptp(stats.rankdata(y)) == 0:
        return math.nan, math.nan
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    observed = float(np.corrcoef(rx, ry)[0, 1])
    if n <= 8:
        rhos = np.array([np.corrcoef(rx, np.asarray(perm))[0, 1] for perm in itertools.permutations(ry)])
        return float((rhos >= observed - 1e-12).mean()), float((rhos <= observed + 1e-12).mean())
    res = stats.spearmanr(x, y)
    p_two = float(res.pvalue)
    return (p_two / 2, 1 - p_two / 2) if observed > 0 else (1 - p_two / 2, p_two / 2)


def one_cluster_chance(k: int, runs_per_group: int, groups: int) -> float:
    """Probability that every one of `groups` groups of `runs_per_group` runs falls in a single one of k
    clusters when each run picks a cluster uniformly at random: (k^(1 - m))^groups."""
    if k < 1 or runs_per_group < 1 or groups < 1:
        return math.nan
    return float(np.exp(groups * (1 - runs_per_group) * np.log(k)))


def std_relative_se(n: int) -> float:
    """Relative standard error of a sample standard deviation from n normal draws, 1 / sqrt(2 (n - 1))."""
    return math.inf if n < 2 else 1.0 / math.sqrt(2.0 * (n - 1))


WORDS = {
    Verdict.AGREES: "Agrees with the study: ",
    Verdict.DIFFERS: "Differs from the study: ",
    Verdict.CANNOT_TELL: "Cannot tell at this size: ",
}
