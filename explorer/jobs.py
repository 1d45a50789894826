"""Long work in a background thread, with progress, time left and a cancel switch.

The app keeps one ``Job`` per browser session (in its session state), so the
page script returns at once and redraws the progress while the thread trains.
The job hands its ``progress`` method to the library as the progress callback:
the callback records each ``ProgressEvent`` and returns False once ``cancel()``
was called, which makes the trainer raise ``Cancelled`` at its next step, so a
cancel really stops the work rather than hiding it.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable

from explorer.errors import Cancelled, ExplorerError
from explorer.training.progress import Progress, ProgressEvent

log = logging.getLogger(__name__)

MAX_EVENTS = 5000
MIN_SHARE_FOR_ETA = 0.02  # before this, start-up costs dominate and the extrapolation is wild


class Job:
    """Runs ``work(progress)`` in a daemon thread; ``progress`` is this job's callback.

    ``work`` receives the callback to pass on as the library's ``progress=``
    argument. Read ``status``, ``fraction``, ``elapsed``, ``eta``,
    ``last_event`` and ``events()`` from any thread; ``result`` once done and
    ``error`` (a message meant for the user) once failed.
    """

    def __init__(self, work: Callable[[Progress], Any], label: str = ""):
        self.work = work
        self.label = label
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._events: deque[ProgressEvent] = deque(maxlen=MAX_EVENTS)
        self._thread: threading.Thread | None = None
        self.status = "pending"
        self.fraction = 0.0
        self.last_event: ProgressEvent | None = None
        self.result: Any = None
        self.error: str = ""
        self.started: float | None = None
        self.finished: float | None = None

    # -- control ---------------------------------------------------------
    def start(self) -> "Job":
        if self._thread is not None:
            raise RuntimeError("a job starts only once")
        self.started = time.perf_counter()
        self.status = "running"
        self._thread = threading.Thread(target=self._run, name=f"job-{self.label or id(self)}", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the work to stop at its next progress event."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; True when it has ended."""
        if self._thread is None:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the callback handed to the library -------------------------------
    def progress(self, event: ProgressEvent) -> bool:
        with self._lock:
            self.fraction = max(self.fraction, event.fraction)  # never moves backwards
            self.last_event = event
            self._events.append(event)
        return not self._cancel.is_set()

    # -- reading -----------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.status in ("pending", "running")

    @property
    def done(self) -> bool:
        return not self.running

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.perf_counter()) - self.started

    @property
    def eta(self) -> float | None:
        """Seconds left, extrapolated from the share done so far; None until 2 % is done."""
        if self.done:
            return 0.0
        if self.fraction < MIN_SHARE_FOR_ETA:
            return None
        return self.elapsed / self.fraction - self.elapsed

    def events(self) -> list[ProgressEvent]:
        with self._lock:
            return list(self._events)

    # -- the thread --------------------------------------------------------
    def _run(self) -> None:
        try:
            if self._cancel.is_set():
                raise Cancelled("cancelled before it started")
            self.result = self.work(self.progress)
            self.fraction = 1.0
            self.status = "done"
        except Cancelled:
            self.status = "cancelled"
        except ExplorerError as e:
            self.error = str(e)
            self.status = "failed"
        except Exception as e:  # a bug, not the user's input: keep the app alive and log the trace
            log.exception("job %s failed", self.label)
            self.error = f"Unexpected error ({type(e).__name__}: {e}). The details are in the server log."
            self.status = "failed"
        finally:
            self.finished = time.perf_counter()


def format_seconds(seconds: float | None) -> str:
    """12 s, 3 min 05 s; '…' when unknown."""
    if seconds is None:
        return "…"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
