"""Per-task gain of co-training against the single-task baseline, with seed and test-row noise.

gain = (m_multi − m_single) / headroom × 100 on the task's primary metric
(higher is better for every primary metric), where the headroom is how far the
single-task model is above the majority-class / mean baseline (without a
known baseline: |m_single|). A task whose single-task model is not above that
baseline gets no relative gain (it would divide by noise) and no verdict (its
score moves among chance-level predictors); its absolute difference is shown.
With ``keep_at_chance`` (the user insists) such a task gets a gain relative to
|m_single| instead, so it enters Δm and the groupings; it stays marked
(``at_chance``, a note) and its verdict stays unclear.

Uncertainty. Seed ``i`` of a multi-task model shares its split, batch order and
initialisation with seed ``i`` of the single-task model, so the per-seed
differences can be paired; ``gain_stats`` uses the paired t interval when the
caller says pairing lowers the variance (``transfer`` measures that over the
whole matrix) and Welch's interval otherwise. Test-set sampling noise (a
bootstrap over test rows, paired because both models predict the same rows)
enters as an extra variance ``row_var``. A standard error below the metric's
resolution (e.g. one test row of accuracy) gets the rounding variance of that
resolution, and a difference below the resolution is never a finding, however
steady the seeds.

The seed variance has few degrees of freedom (two at three seeds), the
test-row variance many (it comes from 200 bootstrap draws over hundreds of
rows); their sum is tested with Welch–Satterthwaite degrees of freedom, so a cell
whose noise is mostly test rows is not tested as if it had only its seeds.

Verdicts over a matrix of cells are made at a false discovery rate
(Benjamini–Hochberg, ``fdr_verdicts``): a cell is positive or negative when its
q-value is at most the rate. Each cell also carries its minimum detectable
effect: the gain it would detect with 80 % power at its seed count.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats

POWER = 0.8
ROW_DF = 199  # degrees of freedom of a test-row variance: one less than the bootstrap's draws


@dataclass
class Gain:
    mean: float          # percent of the headroom (NaN when the single-task model is at chance)
    std: float           # percent, spread of per-seed gains (0 with one seed)
    low: float           # 95 % interval of the gain, percent (NaN with < 2 seeds per side)
    high: float
    p_value: float
    verdict: str
    n_multi: int
    n_single: int
    multi_mean: float
    single_mean: float
    diff: float = float("nan")        # absolute difference of mean scores, metric units
    diff_low: float = float("nan")    # its interval, metric units
    diff_high: float = float("nan")
    baseline: float | None = None     # majority-class / mean baseline score of the task, when known
    at_chance: bool = False           # single-task model not above the baseline: no relative gain
    paired: bool = False              # paired-seed interval (True) or Welch (False)
    mde: float = float("nan")         # minimum detectable gain at 80 % power, percent
    q_value: float = float("nan")     # Benjamini–Hochberg over the cells it was tested with
    note: str = ""
    seed_var: float = float("nan")    # variance of the difference from the seeds, metric units²
    row_var: float = 0.0              # its test-row sampling variance, metric units²

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def relative_gain(multi: float, single: float) -> float:
    return (multi - single) / max(abs(single), 1e-12) * 100.0


# A single-task model "above chance" closes at least this share of the gap between the baseline and a
# perfect score (1 for macro-F1, accuracy and R²): below it, a relative gain divides by noise
# (a macro-F1 of 0.049 against a majority 0.047 turned +0.007 into +15 %).
MIN_HEADROOM_SHARE = 0.05


# What "chance" means wherever a task at chance is explained (``explorer.training.metrics.chance_score``).
CHANCE_LEVEL = "the majority class, the mean, or guessing at the class frequencies"
NOTE_AT_CHANCE = f"the single-task model is not above its chance baseline ({CHANCE_LEVEL}): no relative gain"
NOTE_KEPT = "relative to the raw score, the task is at chance"


def headroom(single_mean: float, baseline: float | None, resolution: float = 0.0,
             perfect: float = 1.0) -> float | None:
    """What a relative gain divides by: the single-task score above the baseline, or None when at chance."""
    if baseline is None or not np.isfinite(baseline):
        return max(abs(single_mean), 1e-12)
    room = single_mean - baseline
    needed = max(resolution, MIN_HEADROOM_SHARE * (perfect - baseline), 1e-12)
    return room if room > needed else None


def _pair(m: np.ndarray, s: np.ndarray) -> np.ndarray | None:
    return m - s if len(m) == len(s) and len(m) >= 2 else None


def _var(x: np.ndarray) -> float:
    """Sample variance (ddof 1) of a few seeds' scores, without numpy's per-call wrapper: a sweep's
    adaptive rounds and the calibration simulations call it for every cell many times."""
    d = x - x.sum() / len(x)
    return float(d @ d) / (len(x) - 1)


def variances(multi, single) -> tuple[float, float | None]:
    """(Welch variance, paired variance or None) of the difference of mean scores."""
    m, s = np.asarray(multi, float), np.asarray(single, float)
    welch = _var(m) / len(m) + _var(s) / len(s) if len(m) >= 2 and len(s) >= 2 else float("nan")
    d = _pair(m, s)
    return float(welch), (_var(d) / len(d) if d is not None else None)


def pooled_seed_variance(scores: dict[str, dict[int, float]]) -> dict[str, tuple[float, int]]:
    """One task's seed variance, pooled over every model that has the task (its single and its partners').

    ``scores``: combo key -> seed -> score of this task. A cell's own seeds give its variance 1–3
    degrees of freedom, whose t quantile (4.3 at 2) costs more power than most effects are
    worth; every model of a task measures the same seed noise, so the task's models together give
    it many (news, 6 tasks, 3 seeds: 10 instead of 2). Two fits, as a cell is paired or not:

    - ``"paired"``: score = combo effect + seed effect + noise (seeds as blocks: what a seed does to
      all its models cancels in a seed-matched difference), the noise variance over N - rank
      degrees of freedom (the residual of the least-squares fit, any pattern of seeds);
    - ``"welch"``: score = combo effect + noise, within-combination variance over N - C.

    Each is (variance of one model's score, degrees of freedom), left out when it has none. It
    assumes a task's models are about equally noisy whatever the partner; ``gain_stats`` never
    lets a cell's variance fall below its own seeds' estimate, which keeps the error rate with
    partners about 30 % apart in seed std (tests/test_gains.py).
    """
    rows = [(c, k, v) for c, by_seed in scores.items() for k, v in by_seed.items() if np.isfinite(v)]
    out: dict[str, tuple[float, int]] = {}
    if not rows:
        return out
    combos = {c: i for i, c in enumerate(sorted({c for c, _, _ in rows}))}
    seeds = {k: j for j, k in enumerate(sorted({k for _, k, _ in rows}))}
    y = np.array([v for _, _, v in rows])
    ci = np.array([combos[c] for c, _, _ in rows])
    sj = np.array([seeds[k] for _, k, _ in rows])
    means = np.bincount(ci, weights=y) / np.bincount(ci)
    df_w = len(rows) - len(combos)
    if df_w > 0:
        out["welch"] = (float(((y - means[ci]) ** 2).sum() / df_w), df_w)
    x = np.zeros((len(rows), len(combos) + len(seeds)))  # combo indicators, then seed indicators ...
    x[np.arange(len(rows)), ci] = 1.0
    x[np.arange(len(rows)), len(combos) + sj] = 1.0
    x = x[:, np.r_[:len(combos), len(combos) + 1:x.shape[1]]]  # ... less the first seed's (collinear)
    fit, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    df_p = len(rows) - int(rank)
    if df_p > 0:
        out["paired"] = (float(((y - x @ fit) ** 2).sum() / df_p), df_p)
    return out


def difference_variance(model_var: float, n_multi: int, n_single: int, paired: bool) -> float:
    """Variance of a cell's mean difference when one model's score has variance ``model_var``
    (a pooled estimate): seed-matched pairs, or two independent means."""
    return model_var * (2 / n_multi if paired else 1 / n_multi + 1 / n_single)


def gain_stats(multi: list[float], single: list[float], alpha: float = 0.05, *, paired: bool = False,
               baseline: float | None = None, resolution: float = 0.0, row_var: float = 0.0,
               keep_at_chance: bool = False, pooled: tuple[float, int] | None = None) -> Gain:
    """Gain of ``multi`` seed scores over ``single`` seed scores, with its interval and p-value.

    With ``paired`` the two lists are seed-matched (same length, same seed
    order) and the interval comes from the per-seed differences; otherwise
    Welch's. ``row_var`` (metric units²) adds the test-row sampling variance of
    the difference; ``resolution`` is the smallest difference the metric can
    tell apart (the standard error never goes below it). ``keep_at_chance`` gives a task whose
    single-task model is at chance a gain relative to |single| (still ``at_chance``, verdict unclear).
    The test-row variance joins the seed variance with Welch–Satterthwaite degrees of freedom
    (``ROW_DF`` for the row part), so a cell whose noise is mostly test rows is not tested with its
    seeds' few degrees of freedom alone. ``pooled`` (variance of one model's score, degrees of
    freedom: ``pooled_seed_variance``'s fit for this kind of interval) replaces the cell's own seed variance.
    """
    m, s = np.asarray(multi, float), np.asarray(single, float)
    if len(m) == 0 or len(s) == 0:
        raise ValueError("gain_stats needs at least one score on each side")
    diff = float(m.mean() - s.mean())
    room = headroom(float(s.mean()), baseline, resolution)
    at_chance = room is None
    if at_chance and keep_at_chance:
        room = max(abs(float(s.mean())), 1e-12)
    scale = (room if room is not None else float("nan")) / 100.0
    per_seed = (m - s.mean()) / scale
    std = float(per_seed.std(ddof=1)) if len(m) > 1 and room is not None else 0.0
    chance_note = (NOTE_KEPT if room is not None else NOTE_AT_CHANCE) if at_chance else ""
    lo = hi = p = mde = float("nan")
    verdict = "unclear"
    use_pair = bool(paired) and _pair(m, s) is not None
    if len(m) >= 2 and len(s) >= 2:
        welch, pvar = variances(m, s)
        if pooled is not None:
            # never below the cell's own estimate: a partner that makes a task noisier than its other
            # models keeps that noise (without it, partners 30 % apart in seed std broke the rate)
            own = pvar if use_pair else welch
            var = max(difference_variance(pooled[0], len(m), len(s), use_pair), own)
            df = pooled[1]
        elif use_pair:
            var, df = pvar, len(m) - 1
        else:
            var = welch
            vm, vs = _var(m) / len(m), _var(s) / len(s)
            df = (vm + vs) ** 2 / (vm ** 2 / (len(m) - 1) + vs ** 2 / (len(s) - 1)) if vm + vs > 0 \
                else len(m) + len(s) - 2
        row = max(row_var, 0.0)
        if row > 0 and var + row > 0:  # Welch–Satterthwaite: a well-measured row part adds degrees of freedom
            # ... computed with the seed variance at its upper 95 % bound: with 2–4 seed degrees of freedom a
            # seed variance that came out small by luck would otherwise claim many degrees of freedom
            # exactly when the interval is already too narrow (a null matrix then found 9 % false verdicts)
            upper = var * df / special.chdtri(df, 0.95) if var > 0 else 0.0
            df = (upper + row) ** 2 / (upper ** 2 / df + row ** 2 / ROW_DF)
        # Rounding to the resolution adds variance res²/12 to each side's score, however steady the seeds.
        se = math.sqrt(max(var + row, resolution ** 2 / 6))
        if se == 0:
            note = "no spread on either side and no metric resolution given: no interval"
            return Gain(diff / scale, std, lo, hi, p, verdict, len(m), len(s), float(m.mean()), float(s.mean()),
                        diff, baseline=baseline, at_chance=at_chance, paired=use_pair,
                        note="; ".join(n for n in (chance_note, note) if n))
        t = special.stdtrit(df, 1 - alpha / 2)  # the t quantile, without scipy.stats' per-call overhead
        d_lo, d_hi = diff - t * se, diff + t * se
        p = float(2 * special.stdtr(df, -abs(diff / se)))
        if abs(diff) < resolution:  # less than one test row apart: not a finding
            p, d_lo, d_hi = 1.0, min(d_lo, -resolution), max(d_hi, resolution)
        mde_abs = (t + special.stdtrit(df, POWER)) * se
        lo, hi, mde = d_lo / scale, d_hi / scale, mde_abs / scale
        # A task at chance gets no verdict: its score moves among chance-level predictors (a macro-F1 rises
        # when a head spreads its guesses over the classes), which is no transfer.
        if at_chance:
            pass
        elif d_lo > 0:
            verdict = "positive"
        elif d_hi < 0:
            verdict = "negative"
    else:
        d_lo = d_hi = float("nan")
    seed_var = var if len(m) >= 2 and len(s) >= 2 else float("nan")
    return Gain(float(diff / scale), std, float(lo), float(hi), float(p), verdict, len(m), len(s),
                float(m.mean()), float(s.mean()), diff, float(d_lo), float(d_hi), baseline, at_chance,
                use_pair, float(mde), note=chance_note, seed_var=float(seed_var), row_var=max(row_var, 0.0))


def fdr_verdicts(gains: list[Gain], rate: float = 0.05) -> None:
    """Benjamini–Hochberg over ``gains`` (in place): q-values, and verdicts at false discovery rate ``rate``.

    A cell without a p-value (too few seeds) or whose task is at chance stays
    unclear and does not count as a test.
    """
    tested = [g for g in gains if np.isfinite(g.p_value) and not g.at_chance]
    if not tested:
        return
    q = stats.false_discovery_control(np.array([g.p_value for g in tested]), method="bh")
    for g, qv in zip(tested, q):
        g.q_value = float(qv)
        if qv <= rate and g.diff != 0:
            g.verdict = "positive" if g.diff > 0 else "negative"
        else:
            g.verdict = "unclear"


def delta_m(gains: list[float]) -> float:
    """Δm of a combination: the mean gain over its tasks, in percent (tasks without a relative gain left out)."""
    vals = [g for g in gains if g is not None and np.isfinite(g)]
    return float(np.mean(vals)) if vals else float("nan")
