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


# --- paired intervals, resolution, chance, FDR over a matrix (numpy simulations, seeded, no training) ---

import numpy as np

from explorer.relatedness.combos import ComboRun
from explorer.relatedness.gains import fdr_verdicts, headroom, pooled_seed_variance
from explorer.relatedness.transfer import transfer_from_runs


def _coverage_and_width(rho, paired, reps=1000, n=5, seed=0):
    """Share of 95 % intervals covering the true difference 0.01, and their mean width, for scores whose
    per-seed noise is shared between the two sides with correlation ``rho``."""
    rng = np.random.default_rng(seed)
    hit, widths = 0, []
    for _ in range(reps):
        common = rng.normal(0, 0.02, n)
        own = rng.normal(0, 0.02, (2, n))
        single = 0.6 + np.sqrt(rho) * common + np.sqrt(1 - rho) * own[0]
        multi = 0.61 + np.sqrt(rho) * common + np.sqrt(1 - rho) * own[1]
        g = gain_stats(multi, single, paired=paired)
        lo, hi = g.diff_low, g.diff_high
        hit += lo <= 0.01 <= hi
        widths.append(hi - lo)
    return hit / reps, float(np.mean(widths))


def test_paired_is_narrower_when_seeds_are_correlated_and_covers_as_often():
    cov_p, width_p = _coverage_and_width(0.8, paired=True)
    cov_w, width_w = _coverage_and_width(0.8, paired=False)
    assert width_p < 0.6 * width_w
    assert abs(cov_p - 0.95) < 0.02 and cov_w > 0.95  # Welch ignores the pairing: conservative here


def test_paired_and_welch_cover_equally_when_seeds_are_independent():
    cov_p, _ = _coverage_and_width(0.0, paired=True, seed=1)
    cov_w, _ = _coverage_and_width(0.0, paired=False, seed=1)
    assert abs(cov_p - 0.95) < 0.02 and abs(cov_w - 0.95) < 0.02


def test_zero_variance_below_resolution_is_not_a_finding():
    g = gain_stats([0.334, 0.334], [0.333, 0.333], resolution=1 / 765)
    assert g.verdict == "unclear" and g.p_value == 1.0
    exact = gain_stats([0.334, 0.334], [0.333, 0.333])  # without a resolution there is no interval at all
    assert exact.verdict == "unclear" and math.isnan(exact.p_value)
    far = gain_stats([0.40, 0.40], [0.333, 0.333], resolution=1 / 765)
    assert far.verdict == "positive"


def test_relative_gain_is_against_the_headroom_and_refused_at_chance():
    above = gain_stats([0.80, 0.81, 0.80], [0.70, 0.70, 0.71], baseline=0.5)
    assert above.mean == pytest.approx((0.80333 - 0.70333) / (0.70333 - 0.5) * 100, rel=1e-3)
    at_chance = gain_stats([0.056, 0.057, 0.055], [0.049, 0.048, 0.050], baseline=0.047)
    assert at_chance.at_chance and math.isnan(at_chance.mean) and at_chance.to_dict()["mean"] is None
    # no verdict at chance: a chance-level score that moves is no transfer (a shuffled control's head
    # spreading its guesses raises its macro-F1)
    assert at_chance.diff == pytest.approx(0.007, abs=1e-4) and at_chance.verdict == "unclear"
    assert "baseline" in at_chance.note
    assert headroom(0.002, 0.0) is None  # an R² of 0.002 is no headroom to divide by
    assert delta_m([float("nan"), 4.0]) == pytest.approx(4.0)
    # the user insists: a gain relative to the raw score, still marked at chance and never a verdict
    kept = gain_stats([0.056, 0.057, 0.055], [0.049, 0.048, 0.050], baseline=0.047, keep_at_chance=True)
    assert kept.at_chance and kept.mean == pytest.approx(0.007 / 0.049 * 100, rel=1e-3)
    assert kept.low < kept.mean < kept.high and kept.verdict == "unclear"
    assert kept.note == "relative to the raw score, the task is at chance"
    assert kept.diff == at_chance.diff and kept.p_value == at_chance.p_value
    # above chance the switch changes nothing
    assert gain_stats([0.80, 0.81, 0.80], [0.70, 0.70, 0.71], baseline=0.5, keep_at_chance=True) == above


def test_minimum_detectable_effect_shrinks_with_seeds():
    rng = np.random.default_rng(3)
    few = gain_stats(0.6 + rng.normal(0, 0.01, 3), 0.6 + rng.normal(0, 0.01, 3))
    many = gain_stats(0.6 + rng.normal(0, 0.01, 12), 0.6 + rng.normal(0, 0.01, 12))
    assert many.mde < few.mde and few.mde > abs(few.mean)


def _null_matrix_runs(rng, tasks, seeds, rho=0.5):
    """Every single and pair, all true gains 0; seed noise partly shared by the models of one seed."""
    runs = []
    for seed in seeds:
        common = rng.normal(0, 0.02)
        for combo in [(t,) for t in tasks] + [(a, b) for i, a in enumerate(tasks) for b in tasks[i + 1:]]:
            metrics = {t: {"primary": "macro_f1", "n": 2000,
                           "macro_f1": 0.6 + np.sqrt(rho) * common + np.sqrt(1 - rho) * rng.normal(0, 0.02)}
                       for t in combo}
            runs.append(ComboRun(combo, seed, metrics, 1, []))
    return runs


def test_null_matrix_gives_a_verdict_in_at_most_the_chosen_share_of_matrices():
    rng = np.random.default_rng(0)
    tasks = list("abcdef")
    reps, any_fdr, any_raw = 250, 0, 0
    for _ in range(reps):
        t = transfer_from_runs(_null_matrix_runs(rng, tasks, range(4)), tasks, fdr=0.05)
        cells = [g for per in t.gains.values() for g in per.values()]
        any_fdr += any(g.verdict != "unclear" for g in cells)
        any_raw += any(g.p_value <= 0.05 for g in cells)
    # BH at 5 %: under the complete null the chance of any verdict is the rate (+2 binomial SE of slack)
    assert any_fdr / reps <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / reps)
    assert any_raw / reps > 0.3  # the 30 uncorrected tests it replaces flag noise in most matrices


def test_null_matrix_with_test_row_noise_keeps_the_rate():
    """As above, with each cell's difference also shifted by its drawn test set (row sd 0.015, above the
    seed noise of the difference) and that variance given as a bootstrap would estimate it: the
    Satterthwaite degrees of freedom must not turn the test rows' many degrees of freedom into findings."""
    rng = np.random.default_rng(2)
    tasks = list("abcdef")
    reps, found = 250, 0
    for _ in range(reps):
        runs = _null_matrix_runs(rng, tasks, range(3))
        offsets = {}
        for run in runs:
            if len(run.tasks) > 1:
                for t in run.tasks:
                    shift = offsets.setdefault((run.tasks, t), rng.normal(0, 0.015))
                    run.metrics[t]["macro_f1"] += shift
        row_var = {("+".join(c), t): 0.015 ** 2 * rng.chisquare(199) / 199 for c, t in offsets}
        t = transfer_from_runs(runs, tasks, fdr=0.05, row_var=row_var)
        found += any(g.verdict != "unclear" for per in t.gains.values() for g in per.values())
    assert found / reps <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / reps)


def _matrix_runs(rng, tasks, seeds, rho=0.0, partner_sd=0.0, effects=None):
    """Every single and pair; seed noise sd 0.02 times a task's scale times, per model kind, a partner
    factor exp(N(0, ``partner_sd``)) (how much a partner changes a task's noise); ``effects``:
    (combo, task) -> true difference."""
    scale, runs = {}, []
    task_scale = {t: float(np.exp(rng.normal(0, 0.5))) for t in tasks}
    for seed in seeds:
        common = rng.normal(0, 0.02)
        for combo in [(t,) for t in tasks] + [(a, b) for i, a in enumerate(tasks) for b in tasks[i + 1:]]:
            metrics = {}
            for t in combo:
                sd = scale.setdefault((combo, t), task_scale[t] * np.exp(rng.normal(0, partner_sd)))
                noise = np.sqrt(rho) * common + np.sqrt(1 - rho) * rng.normal(0, 0.02)
                metrics[t] = {"primary": "macro_f1", "n": 2000,
                              "macro_f1": 0.6 + (effects or {}).get((combo, t), 0.0) + sd * noise}
            runs.append(ComboRun(combo, seed, metrics, 1, []))
    return runs


def test_pooled_seed_variance_is_the_block_and_one_way_residual():
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 0.05, 40)
    scores = {c: {k: mu + seed_effect[k] + rng.normal(0, 0.01) for k in range(40)}
              for c, mu in (("a", 0.6), ("a+b", 0.62), ("a+c", 0.58))}
    pools = pooled_seed_variance(scores)
    assert pools["paired"][1] == 3 * 40 - (3 + 40 - 1) and pools["welch"][1] == 3 * 40 - 3
    assert np.sqrt(pools["paired"][0]) == pytest.approx(0.01, rel=0.15)   # the seed effect is blocked out
    assert np.sqrt(pools["welch"][0]) == pytest.approx(0.051, rel=0.2)    # ... and is noise without blocks
    del scores["a+c"][5], scores["a"][7]                                   # any pattern of seeds
    assert pooled_seed_variance(scores)["paired"][1] == 3 * 40 - 2 - (3 + 40 - 1)
    assert pooled_seed_variance({"a": {0: 0.5}}) == {}


def test_null_matrix_with_partners_of_unequal_noise_keeps_the_rate():
    """Pooling assumes a task's models are about equally noisy; with partners 30 % apart in seed std
    (no seed effect to pair away, 3 seeds) the cell's own estimate as a floor keeps the rate."""
    rng = np.random.default_rng(5)
    tasks, reps, found = list("abcdef"), 300, 0
    for _ in range(reps):
        t = transfer_from_runs(_matrix_runs(rng, tasks, range(3), partner_sd=0.3), tasks, fdr=0.05)
        found += any(g.verdict != "unclear" for per in t.gains.values() for g in per.values())
    assert found / reps <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / reps)


def test_pooling_over_a_tasks_models_finds_more_of_the_true_effects():
    """Four cells with a true difference of about 1.5 seed std, 3 seeds: the cells' own 2 degrees of freedom
    find almost none of them; the task's pooled variance finds several times as many."""
    rng = np.random.default_rng(6)
    tasks = list("abcdef")
    effects = {(("a", "b"), "a"): 0.03, (("c", "d"), "d"): -0.03, (("a", "e"), "e"): 0.03,
               (("b", "f"), "b"): -0.03}
    found = {True: 0, False: 0}
    for _ in range(60):
        runs = _matrix_runs(rng, tasks, range(3), rho=0.5, effects=effects)
        for pooled in found:
            t = transfer_from_runs(runs, tasks, fdr=0.05, pooled=pooled)
            found[pooled] += sum(g.verdict != "unclear" for per in t.gains.values() for g in per.values())
    assert found[True] > 3 * max(found[False], 1)


def test_fdr_verdicts_follow_q_values():
    gains = [gain_stats([0.7 + e, 0.71 + e, 0.705 + e], [0.6, 0.605, 0.61]) for e in (0.0, 0.001)] + \
        [gain_stats([0.60, 0.64, 0.58], [0.61, 0.59, 0.62])]
    fdr_verdicts(gains, 0.05)
    assert [g.verdict for g in gains] == ["positive", "positive", "unclear"]
    assert all(g.q_value >= g.p_value for g in gains)


def test_chance_is_the_better_of_majority_and_frequency_guessing():
    """On three balanced classes guessing at the class frequencies scores macro-F1 1/3 while the majority
    class scores 1/6: a model at 0.33 (a shuffled task) has learned nothing and must count as at chance."""
    from explorer.data.tasks import Task
    from explorer.training.metrics import chance_score, majority_baseline, primary

    task = Task("t", "multiclass", ("a", "b", "c"))
    y = np.repeat([0, 1, 2], 100)
    assert primary(majority_baseline(task, y, y)) == pytest.approx(1 / 6)
    assert chance_score(task, y, y) == pytest.approx(1 / 3)
    skewed = np.array([0] * 280 + [1] * 10 + [2] * 10)  # still 1/K: each class's F1 is its share
    assert chance_score(task, skewed, skewed) == pytest.approx(1 / 3)
    assert chance_score(task, skewed, skewed) > primary(majority_baseline(task, skewed, skewed))
    reg = Task("r", "regression")
    values = np.linspace(0, 1, 50)
    assert chance_score(reg, values, values) == pytest.approx(0.0, abs=1e-12)  # the mean: R² 0
    assert headroom(1 / 3 + 0.01, chance_score(task, y, y)) is None


@pytest.mark.parametrize("row_sd", [0.003, 0.01, 0.03])
def test_seed_and_test_row_noise_together_cover_at_the_rate(row_sd):
    """Three seeds (seed sd 0.01) on one drawn test set (row sd ``row_sd``, its variance estimated by a
    200-draw bootstrap): the degrees of freedom never make the interval cover less than 95 %, and when
    test rows dominate it covers at the rate and is narrower than one with the seeds' degrees of freedom
    alone."""
    rng = np.random.default_rng(7)
    reps, hit, widths = 2000, 0, []
    for _ in range(reps):
        test_set = rng.normal(0, row_sd)  # what this test set adds to every seed's difference
        multi = 0.61 + test_set + rng.normal(0, 0.01, 3)
        single = 0.60 + rng.normal(0, 0.01, 3)
        row_var = row_sd ** 2 * rng.chisquare(199) / 199
        g = gain_stats(multi, single, row_var=row_var)
        hit += g.diff_low <= 0.01 <= g.diff_high
        widths.append(g.diff_high - g.diff_low)
    assert hit / reps > 0.95 - 0.015
    if row_sd > 0.01:
        assert abs(hit / reps - 0.95) < 0.015
        seeds_df_only = 2 * 2.776 * np.sqrt(2 * 0.01 ** 2 / 3 + row_sd ** 2)  # t(0.975, 4): Welch at 3 + 3 seeds
        assert np.mean(widths) < 0.8 * seeds_df_only
