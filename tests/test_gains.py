import math

import pytest

from explorer.relatedness.gains import delta_m, gain_stats, relative_gain


def test_relative_gain_is_percent_of_single():
    assert relative_gain(0.55, 0.5) == pytest.approx(10.0)
    assert relative_gain(0.45, 0.5) == pytest.approx(-10.0)


def test_clear_effects_get_a_verdict():
    up = gain_stats([0.80, 0.81, 0.805], [0.70, 0.705, 0.71])
    assert up.verdict == "positive" and up.low > 0
    down = gain_stats([0.60, 0.61, 0.605], [0.70, 0.705, 0.71])
    assert down.verdict == "negative" and down.high < 0


def test_noise_is_unclear():
    g = gain_stats([0.70, 0.74, 0.69], [0.71, 0.69, 0.73])
    assert g.verdict == "unclear" and g.low < 0 < g.high


def test_one_seed_can_never_clear_the_noise():
    g = gain_stats([0.9], [0.5])
    assert g.verdict == "unclear" and math.isnan(g.low) and g.mean == pytest.approx(80.0)
    assert g.to_dict()["low"] is None


def test_delta_m():
    assert delta_m([2.0, -1.0]) == pytest.approx(0.5)
