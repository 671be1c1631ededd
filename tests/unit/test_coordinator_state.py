"""The coordinator's state changes, fed records and messages without a socket: membership
(admission, spares, loss, re-admission) and the run's state (STATS merged, DONE kept),
and the one property recovery rests on: replaying the journal a live run wrote rebuilds
the state the live run held."""

from __future__ import annotations

from typing import Any

import pytest

from harness.control.membership import Membership
from harness.control.messages import Malformed
from harness.control.runstate import RECORDS, RunState, record, well_formed
from harness.core.outcome import ModelResult
from harness.stats import Recorder


class Live:
    """The coordinator's `record`: journal first (a list here), then the state change."""

    def __init__(self) -> None:
        self.journal: list[dict[str, Any]] = []
        self.state = RunState()

    def record(self, kind: str, checked: Any = None, /, **fields: Any) -> Any:
        r = record(kind, **fields)
        self.journal.append(r)
        return self.state.apply(r, checked)


def _cells_from(rec: Recorder) -> list[Any]:
    """STATS cells as a worker ships them (Recorder.drain, each cell on the wire)."""
    return [[k, name, stats.to_wire()] for (k, name), stats in rec.drain().items()]


def test_admission_spares_and_a_repeated_hello():
    live = Live()
    members = Membership(2, 5.0, live.record)
    assert members.hello(b"a", "w-a", "h1")[1].index == 0
    reply, again = members.hello(b"a", "w-a", "h1")   # a repeated HELLO: the same worker
    assert reply == "WELCOME" and again.index == 0 and len(members.workers) == 1
    assert members.hello(b"b", "w-b", "h2")[1].index == 1
    assert members.complete()
    assert members.hello(b"c", "w-c", "h3") == ("SPARE", None)
    assert b"c" in members.spares and len(live.state.workers) == 2
    assert [r["k"] for r in live.journal] == ["join", "join"]


def test_loss_and_readmission_keep_the_gap_and_replay_the_same():
    live = Live()
    members = Membership(2, 5.0, live.record)
    a = members.hello(b"a", "w-a", "h1")[1]
    b = members.hello(b"b", "w-b", "h2")[1]
    now = a.last_heard
    members.check_lost(now + 1.0, "thread")          # within lost_after: nobody lost
    assert a.alive and b.alive
    b.last_heard = now + 4.0
    members.check_lost(now + 6.0, "thread")          # a silent 6 s > 5 s; b heard at +4
    assert not a.alive and b.alive and a.lost_during == "thread"
    members.check_lost(now + 7.0, "thread")          # lost once, not again
    assert [r["k"] for r in live.journal].count("lost") == 1
    assert members.heard(b"a") is a and a.alive      # speaks again: re-admitted
    assert len(a.gaps) == 1 and a.gaps[0][1] >= a.gaps[0][0]
    assert members.heard(b"zz") is None              # not one of ours

    replayed = RunState()
    for r in live.journal:
        assert well_formed(r)
        replayed.apply(r)
    for index, w in live.state.workers.items():
        twin = replayed.workers[index]
        assert (twin.name, twin.host, twin.gaps, twin.lost_at, twin.lost_during) == \
               (w.name, w.host, w.gaps, w.lost_at, w.lost_during)


def test_stats_and_done_change_the_model_and_replay_to_the_same_counts():
    live = Live()
    members = Membership(2, 5.0, live.record)
    members.hello(b"a", "w-a", "h1")
    members.hello(b"b", "w-b", "h2")
    live.state.models[0] = ModelResult("thread", 0)   # the coordinator's, before START
    live.record("model", model=0, label="thread", started=100.0)
    for worker, n, second, sent in ((0, 5, 0, 5), (1, 7, 0, 7), (0, 3, 1, 8)):
        c = _cells_from(_recorded(n, second))   # `sent`: the worker's running total
        live.record("stats", model=0, worker=worker, cells=c, sent=sent, seq=second)
    live.record("done", model=0, worker=0, totals={"sent": 8}, error="")
    live.record("done", model=0, worker=1, totals={"sent": 7}, error="boom")
    live.record("model_end", model=0, ended=110.0, aborted=False)
    result = live.state.models[0]
    assert result.newest == {0: 1, 1: 0} and result.sent_seen == {0: 8, 1: 7}
    assert result.errors == ["w-b: boom"] and not result.aborted

    replayed = RunState()
    for r in live.journal:
        replayed.apply(r)
    twin = replayed.models[0]
    assert (twin.label, twin.started_wall, twin.ended_wall, twin.aborted, twin.totals,
            twin.errors, twin.sent_seen) == (result.label, result.started_wall,
                                            result.ended_wall, result.aborted, result.totals,
                                            result.errors, result.sent_seen)
    count = {k: sum(t.requests for t in m.tallies.values()) for k, m in
             (("live", result), ("replayed", twin))}
    assert count == {"live": 15, "replayed": 15}


def _recorded(n: int, second: int) -> Recorder:
    rec = Recorder(["page"], 0, users=1)
    for i in range(n):
        rec.ok(0, second * 10**9 + 1000 + i, 1_000_000, 10, 200)
    return rec


def test_a_model_read_back_without_its_end_is_aborted():
    state = RunState()
    state.apply(record("model", model=3, label="uvloop-fast", started=1.0))
    assert state.models[3].aborted and state.ordered_models()[0].label == "uvloop-fast"


def test_a_malformed_stats_changes_nothing():
    state = RunState()
    state.apply(record("model", model=0, label="sync", started=1.0))
    bad = record("stats", model=0, worker=0, cells=[[0, "page", {"hist": "not bytes"}]],
                 sent=1, seq=0)
    with pytest.raises(Malformed):
        state.apply(bad)
    assert not state.models[0].tallies and not state.models[0].sent_seen


def test_records_are_declared():
    with pytest.raises(ValueError, match="declared"):
        record("lost", worker=0)                      # `during` missing
    with pytest.raises(ValueError, match="declared"):
        record("join", worker=0, name="w", host="h", extra=1)
    assert not well_formed({"k": "stats", "at": 1.0, "model": 0})
    assert not well_formed({"k": "nonsense", "at": 1.0})
    assert set(RECORDS) == {"join", "lost", "back", "refused", "model", "stats", "done",
                            "model_end"}
