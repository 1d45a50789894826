"""The shape of report.json, checked whole before a report (a file, an upload) is used.

``check_report`` is called by ``explorer.relatedness.sweep.parse_report`` (and so by
``load_report`` and the Relatedness page's upload): a malformed report is refused with one
sentence naming the field, instead of an IndexError or a format error deep in a chart.
Keys added by newer versions are optional, so older reports still load.
"""
from __future__ import annotations

from explorer.errors import ExplorerError
from explorer.relatedness.transfer import combo_tasks
from explorer.schema import check_schema

FIX = "Load a report.json written by `python -m explorer sweep`."
REQUIRED = ["tasks", "metric", "single", "pair_gain", "pair_gain_std", "pair_verdict"]

_NUM = {"type": ["number", "null"], "finite": True}
_INT = {"type": "integer", "minimum": 0}
_NAMES = {"type": "array", "items": {"type": "string"}, "maxItems": 4096}
_PAIR = {"type": "array", "maxItems": 2, "items": _NUM}            # an interval [low, high]
# The numbers the pages format or plot from a record (a gain, an estimate, a grouping): typed, so a
# string there is refused here rather than failing in an f-string; other keys are free.
_NUMBERS = ("mean", "std", "low", "high", "p_value", "q_value", "spearman", "value", "diff", "diff_low",
            "diff_high", "mde", "mean_gain", "mae", "trained_std", "baseline", "multi_mean", "single_mean")
_LOOSE = {"type": "object", "x-message": "a record's numbers must be numbers or null",
          "properties": {**{k: _NUM for k in _NUMBERS}, "interval": {"anyOf": [{"type": "null"}, _PAIR]},
                         "n_pairs": {"type": "integer"}, "verdict": {"type": ["string", "null"]}}}


def _matrix(cell: dict, what: str) -> dict:
    return {"type": "array", "maxItems": 4096, "items": {"type": "array", "maxItems": 4096, "items": cell},
            "x-message": f"'{what}' must be a matrix (a list of rows) of {{value}}"
                         .replace("{value}", "numbers or nulls" if cell is _NUM else "cells")}


REPORT_SCHEMA = {
    "type": "object",
    "required": REQUIRED,
    "x-message": f"it needs all of {', '.join(REQUIRED)}",
    "properties": {
        "version": {"type": "integer", "minimum": 1, "x-message": "'version' must be a whole number, not {value}"},
        "tasks": {"type": "array", "minItems": 1, "maxItems": 4096, "uniqueItems": True,
                  "items": {"type": "string", "minLength": 1},
                  "x-message": "'tasks' must be a list of distinct task names (at least one)"},
        "metric": {"type": "object", "additionalProperties": {"type": "string"},
                   "x-message": "'metric' must map each task to its metric's name"},
        "single": {"type": "object", "additionalProperties": {
            "type": "object", "x-message": "'single' must map each task to its mean, std and scores",
            "properties": {"mean": _NUM, "std": _NUM, "baseline": _NUM,
                           "scores": {"type": "array", "items": _NUM, "maxItems": 4096}}}},
        "pair_gain": _matrix(_NUM, "pair_gain"),
        "pair_gain_std": _matrix(_NUM, "pair_gain_std"),
        "pair_verdict": _matrix({"type": ["string", "null"]}, "pair_verdict"),
        "pair_interval": _matrix({"anyOf": [{"type": "null"}, _PAIR]}, "pair_interval"),
        "pair_q": _matrix(_NUM, "pair_q"),
        "pair_seeds": _matrix({"type": ["integer", "null"]}, "pair_seeds"),
        "pair_mde": _matrix(_NUM, "pair_mde"),
        "pair_stop": _matrix({"type": ["string", "null"]}, "pair_stop"),
        "pairing": _LOOSE,
        "fdr": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                "x-message": "'fdr' must be a number between 0 and 1, not {value}"},
        "at_chance": _NAMES,
        "keep_at_chance": {"type": "boolean", "x-message": "'keep_at_chance' must be true or false, not {value}"},
        "controls": _NAMES,
        "estimates": {"type": "object", "additionalProperties": _LOOSE},
        "gains": {"type": "object", "x-message": "'gains' must map combinations to per-task gain records",
                  "additionalProperties": {"type": "object", "additionalProperties": _LOOSE}},
        "delta_m": {"type": "object", "additionalProperties": _NUM},
        "scores": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": {"type": "array", "items": _NUM, "maxItems": 4096}}},
        "best_epoch": {"type": "object", "additionalProperties": {"type": "array", "items": _INT}},
        "higher_order": {"type": "object", "additionalProperties": _LOOSE},
        "affinity": {"anyOf": [{"type": "null"}, {"type": "object", "required": ["tasks"],
                                                  "properties": {"tasks": _NAMES}}]},
        "proxy_spearman": {"type": "object", "additionalProperties": _NUM},
        "proxy_spearman_detail": {"type": "object", "additionalProperties": _LOOSE},
        "groupings": {"type": "object"},
        "by_fraction": {"type": ["object", "null"]},
        "by_arch": {"type": "object", "additionalProperties": {"type": "object"},
                    "x-message": "'by_arch' must map each architecture to its matrix"},
        "arch_changes": {"type": "array", "items": {"type": "object"},
                         "x-message": "'arch_changes' must be a list of cells"},
        "combinations": {"type": "array", "items": _NAMES},
        "order": {"type": "integer", "minimum": 1},
        "seeds": {"type": "array", "items": {"type": "integer"}},
        "mode": {"type": "string"},
        "config": {"type": "object"},
        "baseline_method": {"type": "string"},
        "train_size": {"type": "number", "exclusiveMinimum": 0, "finite": True},
        "train_rows": _INT,
        "split_sizes": {"type": "object", "additionalProperties": _INT},
        "dataset": {"type": "string"},
        "dataset_source": {"type": "object"},
        "dataset_fingerprint": {"type": "string"},
        "device": {"type": "string"},
        "seconds": {"type": "number", "finite": True},
        "reused": {"type": "object", "additionalProperties": _NAMES},
    },
}

MATRICES = ("pair_gain", "pair_gain_std", "pair_verdict", "pair_interval", "pair_q", "pair_seeds", "pair_mde",
            "pair_stop")


def check_report(data: object, source: str = "The file", newest: int | None = None) -> dict:
    """``data`` (parsed report.json) when it is a whole sweep report; an ExplorerError naming the flaw otherwise.

    Beyond the schema: every matrix is tasks x tasks, every task has a metric and single-task
    scores, and combinations, gains and scores name only the report's tasks.
    """
    if not isinstance(data, dict):
        raise ExplorerError(f"{source} does not hold a sweep report (a JSON object). {FIX}")
    check_schema(data, REPORT_SCHEMA, source, FIX, lead=f"{source} is not a sweep report as the explorer writes it")
    if newest is not None and data.get("version", 1) > newest:
        raise ExplorerError(f"{source} is report version {data['version']}; this explorer reads up to {newest}. "
                            "Update the explorer to read it.")
    tasks = data["tasks"]
    n = len(tasks)

    def refuse(message: str):
        raise ExplorerError(f"{source} is not a sweep report as the explorer writes it: {message}. {FIX}")

    for key in MATRICES:
        rows = data.get(key)
        if rows in (None, []) and key not in REQUIRED:
            continue  # optional: older reports lack the newer matrices
        if len(rows) != n or any(len(r) != n for r in rows):
            refuse(f"'{key}' must be {n} x {n} (one row and column per task), got {len(rows)} rows"
                   + (f" of {sorted({len(r) for r in rows})} cells" if rows else ""))
    for key in ("metric", "single"):
        missing = [t for t in tasks if t not in data[key]]
        if missing:
            refuse(f"'{key}' lacks {', '.join(missing[:5])}")
    known = set(tasks)

    def outside(names) -> list[str]:
        return [t for t in names if t not in known]

    for combo in data.get("combinations", []):
        if outside(combo):
            refuse(f"combination {'+'.join(combo)} names {', '.join(outside(combo))}, which is not among 'tasks'")
    for field in ("gains", "scores"):
        for key, per_task in data.get(field, {}).items():
            if bad := outside(list(combo_tasks(key))) + outside(per_task):
                refuse(f"'{field}' entry {key!r} names {', '.join(dict.fromkeys(bad))}, which is not among 'tasks'")
    for field in ("at_chance", "controls"):
        if bad := outside(data.get(field, [])):
            refuse(f"'{field}' names {', '.join(bad)}, which is not among 'tasks'")
    affinity = data.get("affinity")
    if isinstance(affinity, dict):
        m = len(affinity["tasks"])
        for key, value in affinity.items():
            if key == "tasks" or not isinstance(value, list):
                continue
            rows = [r for r in value if isinstance(r, list)]
            if len(value) != m or (rows and (len(rows) != m or any(len(r) != m for r in rows))):
                refuse(f"'affinity.{key}' must have one entry per task of 'affinity.tasks' ({m})")
    return data
