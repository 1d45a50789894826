import pytest

from explorer.errors import Cancelled
from explorer.training.progress import ProgressEvent, emit, within


def test_emit_sends_one_event_and_false_cancels():
    seen = []
    emit(seen.append, "train", 2, 8, "epoch 1/2", {"a": 0.5})
    assert seen == [ProgressEvent("train", 2, 8, "epoch 1/2", {"a": 0.5})] and seen[0].fraction == 0.25
    emit(None, "train", 1, 2)  # no callback: nothing to do
    with pytest.raises(Cancelled, match="train cancelled"):
        emit(lambda e: False, "train", 1, 2)


def test_within_maps_a_part_into_the_whole_and_passes_the_cancel_back():
    seen = []
    part = within(seen.append, start=3, size=2, total=10, phase="sweep", prefix="pairs")
    emit(part, "train", 50, 100, "epoch 1/4", {"a": 1.0})
    emit(part, "train", 100, 100)
    assert [(e.phase, e.done, e.total) for e in seen] == [("sweep", 4.0, 10), ("sweep", 5.0, 10)]
    assert seen[0].message == "pairs · epoch 1/4" and seen[0].losses == {"a": 1.0} and seen[1].message == "pairs"
    assert within(None, 0, 1, 1) is None
    with pytest.raises(Cancelled):
        emit(within(lambda e: False, 0, 1, 2), "train", 1, 1)
