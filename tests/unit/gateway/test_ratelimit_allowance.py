"""The part of a rate limit one gateway may decide on its own (services/gateway/ratelimit.py `Allowance`)."""
from __future__ import annotations

from services.gateway.ratelimit import ALLOWANCE_SECONDS, SHARE, Allowance


def test_nothing_is_admitted_here_until_redis_said_what_is_left():
    assert not Allowance().take(now=0.0)


def test_an_allowance_is_half_of_what_is_left_and_at_most_a_share_of_the_limit():
    allowance = Allowance()
    allowance.grant(remaining=1200, amount=1200, now=0.0)
    assert allowance.left == 1200 // SHARE
    allowance.grant(remaining=10, amount=1200, now=0.0)
    assert allowance.left == 5
    allowance.grant(remaining=1, amount=1200, now=0.0)
    assert allowance.left == 0 and not allowance.take(now=0.0)  # near the limit Redis decides each request


def test_what_it_admits_is_pending_until_counted_and_stops_at_its_size():
    allowance = Allowance()
    allowance.grant(remaining=8, amount=1200, now=0.0)
    assert [allowance.take(now=0.1) for _ in range(5)] == [True] * 4 + [False]
    assert allowance.pending == 4 and allowance.left == 0


def test_an_allowance_not_spent_in_time_lapses():
    allowance = Allowance()
    allowance.grant(remaining=1000, amount=1200, now=10.0)
    assert allowance.take(now=10.0 + ALLOWANCE_SECONDS / 2)
    assert not allowance.take(now=10.0 + ALLOWANCE_SECONDS)
    assert allowance.pending == 1  # what it admitted still has to be counted


def test_a_revoked_allowance_admits_nothing_and_an_idle_one_can_be_forgotten():
    allowance = Allowance()
    allowance.grant(remaining=1000, amount=1200, now=0.0)
    allowance.revoke()
    assert not allowance.take(now=0.0)
    assert not allowance.idle(now=0.5)  # its grant is still running: it may be asked again
    assert allowance.idle(now=ALLOWANCE_SECONDS)
    allowance.pending = 1
    assert not allowance.idle(now=ALLOWANCE_SECONDS)  # uncounted requests keep it


def test_a_grant_leaves_out_what_the_read_of_the_window_may_not_have_seen():
    allowance = Allowance()
    allowance.sending(10)  # a request counting 10 is on its way to Redis
    mark = allowance.mark()  # ... as the read of the window goes out
    allowance.sending(4)  # another goes out meanwhile
    allowance.answered(10)
    allowance.pending = 2  # and two were admitted here
    allowance.grant(remaining=100, amount=12000, now=0.0, mark=mark)
    assert allowance.left == (100 - 10 - 4 - 2) // 2


def test_nothing_is_granted_when_what_went_unseen_fills_the_window():
    allowance = Allowance()
    allowance.sending(30)
    allowance.grant(remaining=20, amount=1200, now=0.0, mark=allowance.mark())
    assert allowance.left == 0 and not allowance.take(now=0.0)
    assert not allowance.idle(now=ALLOWANCE_SECONDS)  # in flight: not forgotten yet
    allowance.answered(30)
    assert allowance.idle(now=ALLOWANCE_SECONDS)
