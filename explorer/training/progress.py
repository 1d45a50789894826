"""The one progress event every long operation emits, and the callback convention.

A long operation (training, a batched sweep, a method comparison, an
attribution pass, ...) takes ``progress: Progress | None``: a callable that
receives a ``ProgressEvent`` and returns False to cancel, which makes the
operation raise ``Cancelled`` at once. The CLI bar (``explorer.commands``) and
the app's job (``explorer.jobs``) read nothing but this type.

An operation made of parts hands each part ``within(progress, ...)``, so the
parts' events arrive rescaled to the whole: ``done / total`` always tells the
share of the whole operation, whatever ran inside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from explorer.errors import Cancelled


@dataclass(frozen=True)
class ProgressEvent:
    phase: str                 # what runs now: "train", "sweep", "compare", "affinity", "explain", ...
    done: float                # units of work done, of ``total``
    total: float
    message: str = ""          # one line for a person, e.g. "ew outlet+section seed 1 · epoch 2/5"
    losses: dict[str, float] = field(default_factory=dict)  # task -> training loss of the latest step, if any

    @property
    def fraction(self) -> float:
        """Share done, in [0, 1] (1 when there is nothing to do)."""
        return min(1.0, max(0.0, self.done / self.total)) if self.total > 0 else 1.0


Progress = Callable[[ProgressEvent], "bool | None"]


def emit(progress: Progress | None, phase: str, done: float, total: float, message: str = "",
         losses: dict[str, float] | None = None) -> None:
    """Send one event; raise ``Cancelled`` when the callback returns False."""
    if progress is None:
        return
    if progress(ProgressEvent(phase, done, total, message, dict(losses or {}))) is False:
        raise Cancelled(f"{phase} cancelled")


def within(progress: Progress | None, start: float, size: float, total: float, phase: str | None = None,
           prefix: str = "") -> Progress | None:
    """A callback for one part of a larger operation.

    The part covers ``[start, start + size)`` of the whole's ``total`` units;
    its events (whatever their own scale) arrive at ``progress`` mapped into
    that range, relabelled with ``phase`` (when given) and ``prefix`` before
    their message. The part's False (cancel) answer passes straight back.
    """
    if progress is None:
        return None

    def inner(event: ProgressEvent) -> bool | None:
        message = f"{prefix} · {event.message}" if prefix and event.message else (prefix or event.message)
        return progress(replace(event, phase=phase or event.phase, done=start + size * event.fraction,
                                total=total, message=message))
    return inner
