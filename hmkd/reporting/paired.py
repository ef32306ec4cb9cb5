"""Paired differences between two methods over the same seeds, with a 95% confidence interval.

Usage:
    diff = paired_difference({0: 0.71, 1: 0.69, 2: 0.73}, {0: 0.70, 1: 0.70, 2: 0.70})   # method, baseline by seed
    diff.mean, diff.ci95, diff.within_noise, diff.seeds

Seeds pair runs that share their data order and initialisation (a stage's ``seeds`` set ``train.seed``), so the
per-seed differences remove what the seed does to both; their mean gets Student's t interval with n - 1 degrees of
freedom. With one shared seed there is a difference but no interval: it is reported as a single-seed difference.
A seed whose value is missing or not finite (NaN) on either side is not paired: it cannot make a difference.
The t quantile is computed here (no SciPy in the stack) from the regularised incomplete beta function.
"""
import math
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

CONFIDENCE = 0.95


class PairedDifference(NamedTuple):
    seeds: Tuple[int, ...]                     # the seeds both have, in order
    mean: float                                # mean of method - baseline over those seeds
    std: Optional[float]                       # sample std (n - 1) of the differences; None for one seed
    ci95: Optional[Tuple[float, float]]        # the mean's 95% interval; None for one seed

    @property
    def within_noise(self) -> Optional[bool]:
        """True when the interval covers 0; None without a finite interval (one seed): no verdict either way."""
        if self.ci95 is None or not all(math.isfinite(v) for v in self.ci95):
            return None
        return self.ci95[0] <= 0.0 <= self.ci95[1]


def paired_difference(method: Dict[int, float], baseline: Dict[int, float]) -> Optional[PairedDifference]:
    """method - baseline over the seeds both have a finite value for; None when they share none."""
    seeds = tuple(sorted(s for s in set(method) & set(baseline) if _finite(method[s]) and _finite(baseline[s])))
    if not seeds:
        return None
    diffs = [method[s] - baseline[s] for s in seeds]
    mean = sum(diffs) / len(diffs)
    if len(diffs) < 2:
        return PairedDifference(seeds, mean, None, None)
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    half = t_quantile(0.5 + CONFIDENCE / 2, len(diffs) - 1) * std / math.sqrt(len(diffs))
    return PairedDifference(seeds, mean, std, (mean - half, mean + half))


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile: the x with P(T <= x) = p for ``df`` degrees of freedom (bisection on the CDF)."""
    if not 0.5 <= p < 1.0 or df < 1:
        raise ValueError("t_quantile needs 0.5 <= p < 1 and df >= 1, got p=%r, df=%r" % (p, df))
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def t_cdf(x: float, df: int) -> float:
    """P(T <= x): 1 - I_{df/(df+x^2)}(df/2, 1/2) / 2 for x >= 0, symmetric below."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + x * x))
    return 1.0 - tail if x >= 0 else tail


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (Lentz's continued fraction, as in Numerical Recipes)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only below the mean: use the symmetry
        return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b
    return front * _beta_fraction(a, b, x) / a


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return result


def by_seed(pairs: Sequence[Tuple[Optional[int], Optional[float]]]) -> Dict[int, float]:
    """{seed: value} from (seed, value) pairs, leaving out runs without a seed or a finite value. A seed given twice
    is a ValueError: keeping either value would pair a run the caller's mean may not be using."""
    seeds = [seed for seed, _ in pairs if seed is not None]
    twice = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if twice:
        raise ValueError("seed %d appears twice; pair one value per seed" % twice[0])
    return {seed: value for seed, value in pairs if seed is not None and _finite(value)}


def _finite(value: Optional[float]) -> bool:
    return value is not None and math.isfinite(value)
