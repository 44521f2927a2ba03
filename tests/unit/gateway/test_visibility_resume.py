"""Whether a client resuming after an id may have missed events the stream no longer holds
(services/gateway/events.py `missed`, fed XINFO STREAM as redis-py parses it)."""
from __future__ import annotations

from services.gateway.events import missed, stream_key


def info(first: str | None, last: str, length: int, added: int, deleted: str = "0-0") -> dict:
    return {"length": length, "entries-added": added, "last-generated-id": last.encode(),
            "max-deleted-entry-id": deleted.encode(),
            "first-entry": (first.encode(), {}) if first else None}


def test_ids_parse_and_compare_as_numbers():
    assert stream_key(b"1700000000000-12") == (1700000000000, 12)
    assert stream_key("5") == (5, 0)
    assert stream_key("10-0") > stream_key("9-99")


def test_nothing_trimmed_nothing_missed():
    stream = info("100-0", "200-0", length=50, added=50)
    assert not missed((100, 0), stream)
    assert not missed((0, 0), stream)  # from the beginning: everything is still there
    assert not missed((200, 0), stream)


def test_an_id_before_the_first_kept_entry_of_a_trimmed_stream_missed_some():
    stream = info("150-0", "200-0", length=40, added=90)
    assert missed((149, 5), stream)
    assert missed((0, 0), stream)
    assert not missed((150, 0), stream)
    assert not missed((180, 1), stream)


def test_deleted_entries_after_the_id_are_missed():
    assert missed((120, 0), info("100-0", "200-0", length=49, added=50, deleted="130-0"))
    assert not missed((130, 0), info("100-0", "200-0", length=49, added=50, deleted="130-0"))


def test_an_id_from_another_life_of_the_stream_is_missed():
    assert missed((300, 0), info("100-0", "200-0", length=10, added=10))  # Redis emptied, ids start again
    assert missed((5, 0), None)  # no stream at all any more
    assert not missed((0, 0), None)


def test_a_stream_trimmed_to_nothing():
    assert missed((100, 0), info(None, "200-0", length=0, added=30))
    assert not missed((200, 0), info(None, "200-0", length=0, added=30))
