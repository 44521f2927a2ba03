"""The usage history's pure rules (services/scheduler/history.py): sample rows, windows, buckets."""
from datetime import datetime, timedelta, timezone

import pytest

from services.scheduler import history, schemas
from tests.unit.scheduler_service.test_scheduler_schemas import snapshot

NOW = datetime(2026, 3, 1, 12, 0, 7, tzinfo=timezone.utc)


def test_a_sample_has_a_row_per_gpu_type_and_one_for_memory_and_cpu_with_unmeasured_use_as_none():
    view = schemas.resources(snapshot(), [{"memory_bytes": 5 * 10**8, "cpu_cores": 0.5}], frozenset({"memory", "cpu"}),
                             {"A100": 2})
    rows = {r.resource: r for r in history.sample_rows(view)}
    assert set(rows) == {"gpu:A100", "gpu:V100", "memory", "cpu"}
    assert rows["gpu:A100"] == history.SampleRow("gpu:A100", 4.0, 3.0, None)  # GPUs not measured: None, not 3
    assert rows["memory"] == history.SampleRow("memory", 64e9, 1e9, 5e8)
    assert rows["cpu"] == history.SampleRow("cpu", 8.0, 1.0, 0.5)


def test_a_window_without_bounds_is_the_last_six_hours_in_about_120_round_buckets_aligned_on_the_step():
    chosen = history.window(None, None, None, now=NOW, sample_s=30)
    assert chosen.step_s == 300  # 6 h / 120 = 180 s -> the next round step
    assert chosen.start.timestamp() % 300 == 0 and chosen.start <= NOW - timedelta(hours=6)
    assert chosen.end == NOW and chosen.points == 73


def test_the_step_is_never_finer_than_the_sampling():
    chosen = history.window(NOW - timedelta(minutes=10), NOW, None, now=NOW, sample_s=30)
    assert chosen.step_s == 30


def test_two_reads_a_moment_apart_draw_the_same_buckets():
    first = history.window(NOW - timedelta(hours=1), NOW, 60, now=NOW, sample_s=30)
    later = history.window(NOW - timedelta(hours=1) + timedelta(seconds=20), NOW + timedelta(seconds=20), 60,
                           now=NOW, sample_s=30)
    assert first.start == later.start


@pytest.mark.parametrize("since, until, step, message", [
    (NOW, NOW - timedelta(hours=1), None, "'from' must be before 'to'"),
    (NOW.replace(tzinfo=None) - timedelta(hours=1), None, None, "'from' needs a time zone"),
    (NOW - timedelta(days=30), NOW, 60, "at most 1000"),
])
def test_a_window_that_cannot_be_answered_says_why(since, until, step, message):
    with pytest.raises(history.WindowError, match=message):
        history.window(since, until, step, now=NOW, sample_s=30)


def test_a_sample_falls_in_the_bucket_its_time_says_and_outside_the_window_in_none():
    chosen = history.Window(NOW - timedelta(minutes=3), NOW, 60)
    assert chosen.bucket_of(NOW - timedelta(minutes=3)) == 0
    assert chosen.bucket_of(NOW - timedelta(seconds=61)) == 1
    assert chosen.bucket_of(NOW - timedelta(seconds=1)) == 2
    assert chosen.bucket_of(NOW) is None and chosen.bucket_of(NOW - timedelta(minutes=4)) is None


def test_series_fill_buckets_without_samples_with_none_and_keep_gpu_types_apart():
    chosen = history.Window(NOW - timedelta(minutes=3), NOW, 60)
    buckets = [history.Bucket(0, "gpu:A100", 16, 4, None), history.Bucket(2, "gpu:A100", 16, 8.5, None),
               history.Bucket(2, "gpu:V100", 8, 1, None), history.Bucket(0, "memory", 2e12, 1e11, 2.5e10),
               history.Bucket(1, "cpu", 256, 12, 3.14159), history.Bucket(7, "cpu", 256, 1, 1)]  # 7: outside
    answer = history.series(chosen, buckets, measured=["memory", "cpu"])
    assert answer["times"] == [(NOW - timedelta(minutes=m)).isoformat() for m in (3, 2, 1)]
    assert answer["gpus"] == [
        {"gpu_type": "A100", "total": [16, None, 16], "allocated": [4, None, 8.5], "used": [None, None, None]},
        {"gpu_type": "V100", "total": [None, None, 8], "allocated": [None, None, 1], "used": [None, None, None]},
    ]
    assert answer["memory"]["allocated_bytes"] == [100_000_000_000, None, None]
    assert answer["memory"]["used_bytes"] == [25_000_000_000, None, None]
    assert answer["cpu"]["used"] == [None, 3.142, None]
    assert answer["measured"] == ["cpu", "memory"] and answer["step_s"] == 60
