"""The numbers behind every verdict: mean ± sd and the paired t interval."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from supcon_utils import stats


def test_mean_sd_is_the_sample_standard_deviation():
    assert stats.mean_sd([1.0, 2.0, 3.0, 6.0]) == pytest.approx((3.0, np.std([1, 2, 3, 6], ddof=1)))
    mean, sd = stats.mean_sd([4.0])
    assert mean == 4.0 and math.isnan(sd)
    with pytest.raises(ValueError, match="no values"):
        stats.mean_sd([])


def test_the_paired_interval_is_scipys_one_sample_t_interval_of_the_differences():
    a, b = [88.30, 88.07, 87.18], [87.96, 88.29, 87.54]
    diff = stats.paired_difference(b, a)
    d = np.subtract(b, a)
    low, high = scipy_stats.t.interval(0.95, 2, loc=d.mean(), scale=scipy_stats.sem(d))
    assert diff == pytest.approx((d.mean(), low, high, 3))
    # the README's former hand computation of this very case: +0.08, -0.84 to +1.00
    assert (round(diff.mean, 2), round(diff.low, 2), round(diff.high, 2)) == (0.08, -0.84, 1.0)


def test_pairing_removes_what_the_seeds_share():
    base = [90.0, 85.0, 80.0]  # seeds differ by 5 points; the setting adds 0.3 +- 0.01
    diff = stats.paired_difference([x + 0.3 for x in base[:2]] + [base[2] + 0.29], base)
    assert 0 < diff.low < 0.3 < diff.high < 0.4


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([2.0, 2.1, 1.9], [1.0, 1.0, 1.0], "ahead"),
        ([0.0, 0.1, -0.1], [1.0, 1.0, 1.0], "behind"),
        ([1.5, 0.5, 1.2], [1.0, 1.0, 1.0], stats.NOT_SEPARATED),
        ([2.0], [1.0], f"one seed: {stats.NOT_SEPARATED}"),
    ],
)
def test_a_verdict_is_called_only_when_the_interval_excludes_zero(a, b, expected):
    assert stats.verdict(stats.paired_difference(a, b), "ahead", "behind") == expected


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="equal, non-zero lengths"):
        stats.paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        stats.paired_difference([1.0, 2.0], [1.0, 1.0], confidence=95)
