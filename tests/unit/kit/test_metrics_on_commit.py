import pytest

from services.kit import metrics

COUNTER = metrics.Counter("avatar_test_on_commit_total", "test counter", ["case"])
HISTOGRAM = metrics.Histogram("avatar_test_on_commit_seconds", "test histogram", ["case"])


def value(case: str) -> float:
    return COUNTER.labels(case)._value.get()


def observed(case: str) -> float:
    return HISTOGRAM.labels(case)._sum.get()


def test_counts_land_when_the_block_commits_and_vanish_when_it_fails():
    with metrics.counted_on_commit():
        COUNTER.labels("ok").inc()
        COUNTER.labels("ok").inc(2)
        HISTOGRAM.labels("ok").observe(0.5)
        assert value("ok") == 0 and observed("ok") == 0  # not yet: the work may still roll back
    assert value("ok") == 3 and observed("ok") == 0.5

    with pytest.raises(RuntimeError):
        with metrics.counted_on_commit():
            COUNTER.labels("failed").inc()
            HISTOGRAM.labels("failed").observe(1.0)
            raise RuntimeError("rolled back")
    assert value("failed") == 0 and observed("failed") == 0


def test_outside_a_block_counts_at_once_and_late_counts_are_not_lost():
    COUNTER.labels("plain").inc()
    assert value("plain") == 1
    with metrics.counted_on_commit():
        pass
    COUNTER.labels("plain").inc()
    assert value("plain") == 2
