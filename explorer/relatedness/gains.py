"""Per-task gain of co-training against the single-task baseline, with seed noise.

gain = (m_multi − m_single) / |m_single| × 100 on the task's primary metric
(higher is better for every primary metric). A gain is called positive or
negative transfer only when the 95 % Welch interval of the difference of mean
scores excludes 0; otherwise it is "unclear". One seed can never clear the noise.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

VERDICTS = ("positive", "negative", "unclear")


@dataclass
class Gain:
    mean: float          # percent, relative to the single-task mean
    std: float           # percent, spread of per-seed gains (0 with one seed)
    low: float           # 95 % interval of the gain, percent (NaN with < 2 seeds per side)
    high: float
    p_value: float
    verdict: str
    n_multi: int
    n_single: int
    multi_mean: float
    single_mean: float

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def relative_gain(multi: float, single: float) -> float:
    return (multi - single) / max(abs(single), 1e-12) * 100.0


def gain_stats(multi: list[float], single: list[float], alpha: float = 0.05) -> Gain:
    """Gain of ``multi`` seed scores over ``single`` seed scores, with a Welch interval."""
    m, s = np.asarray(multi, float), np.asarray(single, float)
    if len(m) == 0 or len(s) == 0:
        raise ValueError("gain_stats needs at least one score on each side")
    scale = max(abs(s.mean()), 1e-12) / 100.0
    diff = m.mean() - s.mean()
    per_seed = (m - s.mean()) / scale
    std = float(per_seed.std(ddof=1)) if len(m) > 1 else 0.0
    low = high = p = float("nan")
    verdict = "unclear"
    if len(m) >= 2 and len(s) >= 2:
        vm, vs = m.var(ddof=1) / len(m), s.var(ddof=1) / len(s)
        se = math.sqrt(vm + vs)
        if se == 0:  # identical scores on every seed: the difference is exact
            low = high = diff / scale
            p = 0.0 if diff != 0 else 1.0
        else:
            df = (vm + vs) ** 2 / ((vm ** 2 / (len(m) - 1) if len(m) > 1 else 0) + (vs ** 2 / (len(s) - 1)))
            t = stats.t.ppf(1 - alpha / 2, df)
            low, high = (diff - t * se) / scale, (diff + t * se) / scale
            p = float(2 * stats.t.sf(abs(diff / se), df))
        if low > 0:
            verdict = "positive"
        elif high < 0:
            verdict = "negative"
    return Gain(float(diff / scale), std, float(low), float(high), float(p), verdict, len(m), len(s),
                float(m.mean()), float(s.mean()))


def delta_m(gains: list[float]) -> float:
    """Δm of a combination: the mean gain over its tasks, in percent."""
    return float(np.mean(gains)) if len(gains) else float("nan")
