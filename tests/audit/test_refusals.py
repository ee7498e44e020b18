"""Rate-limit refusals: the first of each window audited in full, the rest counted into one summary."""

from __future__ import annotations

from genesis.audit.events import new_event
from genesis.audit.recorder import summary_event
from genesis.audit.refusals import RefusalWindows

KEY = ("user:ann", "203.0.113.7", "strategy.calculate")
FIELDS = new_event("strategy.calculate", actor="user:ann", outcome="denied", source_ip="203.0.113.7", status=429,
                   path="/strategy/calculate", method="POST", correlation_id="c1", request_id="r1",
                   message="POST /strategy/calculate -> 429")


def test_the_first_refusal_of_a_window_is_admitted_and_the_rest_are_counted() -> None:
    windows = RefusalWindows(60)
    assert windows.admit(KEY, FIELDS, now=0.0, now_us=1_000)
    assert [windows.admit(KEY, FIELDS, now=t, now_us=1_000 + int(t * 1e6)) for t in (1, 2, 3)] == [False] * 3
    assert windows.admit(("user:bob", "203.0.113.8", "strategy.calculate"), FIELDS, now=4.0, now_us=5_000_000)
    assert windows.due(now=59.0) == []
    (summary,) = windows.due(now=60.0)  # ann's window closed; bob's had nothing to count
    assert (summary.key, summary.count, summary.first_us, summary.last_us) == (KEY, 3, 1_001_000, 3_001_000)
    event = summary_event(summary)
    assert event.action == "ratelimit.refused.summary" and event.status == 429 and event.outcome == "denied"
    assert event.actor == "user:ann" and event.source_ip == "203.0.113.7" and event.method == "POST"
    assert event.metadata == {"refused": 3, "first_us": 1_001_000, "last_us": 3_001_000, "window_seconds": 60}
    assert event.correlation_id != "c1" and event.request_id is None  # the summary gets its own
    assert "3 more rate-limited requests by user:ann" in event.message
    assert windows.due(now=65.0) == [] and len(windows) == 0


def test_a_refusal_after_the_window_opens_a_new_one_and_the_old_count_is_not_lost() -> None:
    windows = RefusalWindows(10)
    assert windows.admit(KEY, FIELDS, now=0.0, now_us=0)
    assert not windows.admit(KEY, FIELDS, now=5.0, now_us=5)
    assert windows.admit(KEY, FIELDS, now=10.5, now_us=10)  # without a due() in between
    assert [s.count for s in windows.due(now=11.0)] == [1]
    assert not windows.admit(KEY, FIELDS, now=12.0, now_us=12)
    assert [(s.count, s.first_us) for s in windows.drain()] == [(1, 12)]
    assert len(windows) == 0


def test_open_windows_are_bounded_and_the_oldest_are_summarised_first() -> None:
    windows = RefusalWindows(60, max_open=3)
    for i in range(5):
        key = (f"user:{i}", "ip", "route")
        assert windows.admit(key, FIELDS, now=float(i), now_us=i)
        assert not windows.admit(key, FIELDS, now=float(i), now_us=i)
    assert [s.key[0] for s in windows.due(now=5.0)] == ["user:0", "user:1"]
    assert len(windows) == 3


def test_a_zero_window_audits_every_refusal_in_full() -> None:
    windows = RefusalWindows(0)
    assert all(windows.admit(KEY, FIELDS, now=float(t), now_us=t) for t in range(5))
    assert windows.drain() == []


def test_forgetting_a_window_audits_the_next_refusal_in_full_and_keeps_pending_counts() -> None:
    windows = RefusalWindows(60)
    assert windows.admit(KEY, FIELDS, now=0.0, now_us=0)
    assert not windows.admit(KEY, FIELDS, now=1.0, now_us=1)
    windows.forget(KEY)  # e.g. the first refusal's audit write failed
    assert windows.admit(KEY, FIELDS, now=2.0, now_us=2)
    assert [s.count for s in windows.due(now=3.0)] == [1]
