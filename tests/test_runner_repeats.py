"""The adaptive repeat rule on given samples (no measurement)."""
from __future__ import annotations

import math

import pytest

from nrg.errors import ParameterError
from nrg.sweep.repeats import RepeatPolicy, ci_rel_halfwidth, should_stop


def test_halfwidth_matches_the_t_interval_by_hand():
    # mean 10, sd 0.2, n 3, t(0.975, 2) = 4.302653 -> 4.302653 * 0.2 / sqrt(3) / 10
    assert ci_rel_halfwidth([9.8, 10.0, 10.2]) == pytest.approx(4.302653 * 0.2 / math.sqrt(3) / 10, rel=1e-6)


def test_halfwidth_is_unknown_with_fewer_than_two_samples_or_zero_mean():
    assert ci_rel_halfwidth([]) == math.inf
    assert ci_rel_halfwidth([1.0]) == math.inf
    assert ci_rel_halfwidth([1.0, -1.0]) == math.inf
    assert ci_rel_halfwidth([1.0, float("nan")]) == math.inf


def test_stops_when_interval_is_narrow_enough():
    policy = RepeatPolicy(min_n=3, max_n=10, ci_rel=0.05)
    assert should_stop([9.8, 10.0, 10.2], policy)            # 4.97% <= 5%
    assert not should_stop([9.7, 10.0, 10.3], policy)        # 7.45% > 5%
    assert not should_stop([10.0, 10.0], policy)             # below min even if exact


def test_stops_at_max_even_when_noisy():
    policy = RepeatPolicy(min_n=3, max_n=4, ci_rel=0.05)
    noisy = [1.0, 2.0, 3.0]
    assert not should_stop(noisy, policy)
    assert should_stop([*noisy, 4.0], policy)


def test_fixed_count():
    policy = RepeatPolicy.parse(5)
    assert policy.fixed
    assert not should_stop([1.0] * 4, policy)
    assert should_stop([1.0, 5.0, 9.0, 2.0, 7.0], policy)


def test_parse_mapping_and_errors():
    assert RepeatPolicy.parse({"min": 2, "max": 6, "ci_rel": 0.1}) == RepeatPolicy(2, 6, 0.1)
    assert RepeatPolicy.parse({"min": 12}) == RepeatPolicy(12, 12, 0.05)
    with pytest.raises(ParameterError, match="min, max, ci_rel"):
        RepeatPolicy.parse({"minimum": 3})
    with pytest.raises(ParameterError, match=r"repeats\.max"):
        RepeatPolicy.parse({"min": 5, "max": 2})
    with pytest.raises(ParameterError, match="ci_rel"):
        RepeatPolicy.parse({"ci_rel": 5})
    with pytest.raises(ParameterError):
        RepeatPolicy.parse(0)
