"""Counting hostile-input cases, shared by the hostile suites (CSV files, bundles).

A suite records how each case ended with ``record``; the ``pytest_terminal_summary``
hook in conftest.py prints one line per suite at the end of the run, so CI's output
shows it: tried / refused cleanly / accepted correctly / tracebacks / hangs.
"""
from __future__ import annotations

import time
import traceback
from collections import defaultdict
from contextlib import contextmanager

from explorer.errors import ExplorerError

REFUSED, ACCEPTED, TRACEBACK, HANG, GARBAGE = ("refused cleanly", "accepted correctly", "tracebacks",
                                               "hangs", "accepted garbage")
OUTCOMES = (REFUSED, ACCEPTED, TRACEBACK, HANG, GARBAGE)
CASE_SECONDS = 20.0  # a case slower than this counts as a hang
TALLIES: dict[str, dict[str, list[str]]] = defaultdict(lambda: {o: [] for o in OUTCOMES})


def record(suite: str, case: str, outcome: str) -> None:
    TALLIES[suite][outcome].append(case)


def summary_lines() -> list[str]:
    lines = []
    for suite, t in sorted(TALLIES.items()):
        tried = sum(len(v) for v in t.values())
        parts = ", ".join(f"{len(t[o])} {o}" for o in OUTCOMES)
        lines.append(f"hostile {suite}: {tried} tried, {parts}")
        for o in (TRACEBACK, HANG, GARBAGE):
            if t[o]:
                lines.append(f"  {o}: {', '.join(t[o])}")
    return lines


@contextmanager
def case(suite: str, name: str, expect_refusal: bool | None = None):
    """Run one case: an ExplorerError is a clean refusal, any other exception a traceback.

    The body sets ``outcome["accepted"] = True`` once it has checked an accepted
    result is correct (finite, right classes); an accepted case that does not is
    garbage. Re-raises so the test fails on a traceback, hang or garbage.
    """
    state = {"accepted": False, "error": None}
    start = time.perf_counter()
    try:
        yield state
    except ExplorerError as e:
        state["error"] = str(e)
    except Exception:  # noqa: BLE001 - what a hostile suite is for
        record(suite, name, TRACEBACK)
        raise AssertionError(f"{name}: traceback\n{traceback.format_exc()}") from None
    if time.perf_counter() - start > CASE_SECONDS:
        record(suite, name, HANG)
        raise AssertionError(f"{name}: took {time.perf_counter() - start:.0f} s (> {CASE_SECONDS:.0f} s)")
    if state["error"] is not None:
        record(suite, name, REFUSED)
        if expect_refusal is False:
            raise AssertionError(f"{name}: refused but should be accepted: {state['error']}")
        return
    if not state["accepted"] or expect_refusal:
        record(suite, name, GARBAGE)
        raise AssertionError(f"{name}: accepted without a correct result")
    record(suite, name, ACCEPTED)
