"""Bulk work runs the cycle collector less often, and leaves the process's own settings as it found them."""

import gc
import threading

from patron.services.collector import BULK_THRESHOLDS, fewer_collections


def test_thresholds_are_raised_inside_and_restored_after_nested_and_concurrent_holders() -> None:
    before = gc.get_threshold()
    inner_entered, outer_may_leave = threading.Event(), threading.Event()
    seen_by_other: list[tuple[int, ...]] = []

    def other_thread() -> None:
        with fewer_collections():
            inner_entered.set()
            outer_may_leave.wait(5)
        seen_by_other.append(gc.get_threshold())

    with fewer_collections():
        assert gc.get_threshold() == BULK_THRESHOLDS
        with fewer_collections():
            assert gc.get_threshold() == BULK_THRESHOLDS
        assert gc.get_threshold() == BULK_THRESHOLDS  # the inner block left, the outer one still holds
        worker = threading.Thread(target=other_thread)
        worker.start()
        inner_entered.wait(5)
    assert gc.get_threshold() == BULK_THRESHOLDS  # the other thread still holds them
    outer_may_leave.set()
    worker.join(5)
    assert seen_by_other == [before]
    assert gc.get_threshold() == before


def test_a_failure_inside_still_restores_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        with fewer_collections():
            raise RuntimeError("the batch failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
