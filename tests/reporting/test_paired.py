"""Paired differences: Student's t quantile against published table values, the interval against a direct
computation with numpy, and when a difference is within noise or has no interval."""
import math

import numpy as np
import pytest

from hmkd.reporting.paired import by_seed, incomplete_beta, paired_difference, t_cdf, t_quantile

# t_{0.975, df}, as printed in every statistics table (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2)
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 10: 2.228, 30: 2.042, 100: 1.984}


@pytest.mark.parametrize("df,expected", sorted(T_975.items()))
def test_t_quantile_matches_the_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=6e-4)
    assert t_cdf(t_quantile(0.975, df), df) == pytest.approx(0.975, abs=1e-10)


def test_t_distribution_limits_and_symmetry():
    z, df = 1.959963985, 100000  # the normal's 97.5% point, and the first term of t's expansion around it
    assert t_quantile(0.975, df) == pytest.approx(z + (z ** 3 + z) / (4 * df), abs=1e-7)
    assert t_cdf(0.0, 7) == pytest.approx(0.5, abs=1e-12)
    assert t_cdf(-1.3, 5) == pytest.approx(1 - t_cdf(1.3, 5), abs=1e-12)
    # df = 1 is the Cauchy distribution, whose CDF has a closed form
    for x in (0.3, 1.0, 4.0):
        assert t_cdf(x, 1) == pytest.approx(0.5 + math.atan(x) / math.pi, abs=1e-10)
    assert incomplete_beta(2.0, 3.0, 0.4) == pytest.approx(0.5248, abs=1e-4)  # 6x^2 - 8x^3 + 3x^4 at 0.4
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile(0.975, 0)


def test_interval_equals_the_direct_computation():
    method = {0: 0.712, 1: 0.695, 2: 0.731, 3: 0.704, 4: 0.722}
    baseline = {0: 0.700, 1: 0.690, 2: 0.705, 3: 0.699, 4: 0.711, 7: 0.5}  # seed 7 has no partner: left out
    got = paired_difference(method, baseline)
    d = np.array([method[s] - baseline[s] for s in range(5)])
    half = T_975[4] * d.std(ddof=1) / math.sqrt(5)
    assert got.seeds == (0, 1, 2, 3, 4)
    assert got.mean == pytest.approx(d.mean(), abs=1e-12) and got.std == pytest.approx(d.std(ddof=1), abs=1e-12)
    assert got.ci95[0] == pytest.approx(d.mean() - half, abs=1e-5) and got.ci95[1] == pytest.approx(d.mean() + half,
                                                                                                   abs=1e-5)
    assert got.within_noise is False  # every seed gained: the interval stays above 0


def test_pairing_removes_what_the_seed_does_to_both():
    """The seeds move both methods a lot, the method adds a steady 0.5 points: unpaired stds would hide it."""
    seed_effect = {0: 0.0, 1: 0.04, 2: -0.03, 3: 0.02, 4: -0.05}
    base = {s: 0.70 + e for s, e in seed_effect.items()}
    method = {s: v + 0.005 + (0.001 if s % 2 else -0.001) for s, v in base.items()}
    got = paired_difference(method, base)
    assert got.within_noise is False and got.ci95[0] > 0
    assert np.std(list(method.values()), ddof=1) > 10 * got.std


def test_within_noise_single_seed_and_no_common_seed():
    noisy = paired_difference({0: 0.70, 1: 0.72, 2: 0.69}, {0: 0.71, 1: 0.70, 2: 0.70})
    assert noisy.ci95[0] < 0 < noisy.ci95[1] and noisy.within_noise is True
    single = paired_difference({3: 0.75}, {3: 0.70, 4: 0.71})
    assert single.seeds == (3,) and single.mean == pytest.approx(0.05) and single.ci95 is None
    assert single.std is None and single.within_noise is None
    assert paired_difference({0: 0.7}, {1: 0.7}) is None
    assert by_seed([(0, 0.5), (None, 0.6), (1, None), (2, 0.7)]) == {0: 0.5, 2: 0.7}


def test_a_nan_value_is_not_paired_and_a_seed_given_twice_is_refused():
    nan = float("nan")
    got = paired_difference({0: 0.72, 1: nan, 2: 0.71}, {0: 0.70, 1: 0.70, 2: 0.70})
    assert got.seeds == (0, 2) and got.mean == pytest.approx(0.015) and math.isfinite(got.ci95[0])
    assert paired_difference({0: nan}, {0: 0.7}) is None   # nothing to compare: no difference, no verdict
    assert by_seed([(0, nan), (1, float("inf")), (2, 0.7)]) == {2: 0.7}
    with pytest.raises(ValueError, match="seed 3 appears twice"):
        by_seed([(3, 0.5), (3, 0.6)])
    with pytest.raises(ValueError, match="seed 3 appears twice"):
        by_seed([(3, nan), (3, 0.6)])   # also when one of them has no value
