"""energy_core.reactions: the reactor's bound on forged events (a fake clock: plain numbers)."""

import json
import threading

import pytest

from energy_core import reactions

KEY = "node-a/energy-node-a-sensor"


def test_one_reaction_per_interval_per_container_and_the_drops_counted():
    state = {}
    assert reactions.admit(state, KEY, 1000.0, 10) == (True, None)
    verdicts = [reactions.admit(state, KEY, 1000.0 + t / 10, 10)[0] for t in range(1, 100)]  # 9.9 s of events
    assert not any(verdicts)
    assert reactions.dropped(state, KEY) == 99 and state["dropped"] == 99
    allowed, note = reactions.admit(state, KEY, 1010.0, 10)
    assert allowed and note == f"{KEY}: 99 event(s) dropped since the last reaction"
    assert reactions.dropped(state, KEY) == 0


def test_a_flood_is_logged_once_per_interval_not_once_per_event():
    state = {}
    reactions.admit(state, KEY, 0.0, 10)
    notes = [reactions.admit(state, KEY, 0.01 * i, 10)[1] for i in range(1, 200)]  # 200 events in 2 s
    assert [n for n in notes if n] == [f"{KEY}: event(s) dropped (rate limit: one reaction per 10 s), 1 so far"]
    later = reactions.admit(state, KEY, 9.99, 10)
    assert later[0] is False and later[1] is None  # noted less than an interval ago


def test_containers_are_limited_apart():
    state = {}
    assert reactions.admit(state, KEY, 0.0, 10)[0]
    assert reactions.admit(state, "node-a/energy-node-a-formula-x", 0.0, 10)[0]
    assert not reactions.admit(state, KEY, 5.0, 10)[0]


def test_a_clock_that_goes_back_does_not_lock_a_container_out():
    state = {}
    assert reactions.admit(state, KEY, 5000.0, 10)[0]
    assert reactions.admit(state, KEY, 100.0, 10)[0]  # the clock was set back: counts as long ago
    assert not reactions.admit(state, KEY, 101.0, 10)[0]


def test_the_state_stays_bounded_and_refusals_cannot_evict_the_limits():
    state = {}
    assert reactions.admit(state, KEY, 0.0, 10)[0]
    for i in range(3 * reactions.MAX_KEYS):
        reactions.drop(state, f"minion 'forged-{i}'", 1.0, 10, "not in the plan", section="refused")
    assert len(state["refused"]) <= reactions.MAX_KEYS
    assert not reactions.admit(state, KEY, 2.0, 10)[0]  # the real container's limit is still there
    for i in range(3 * reactions.MAX_KEYS):
        reactions.admit(state, f"node-a/energy-node-a-{i}", 3.0 + i, 10)
    assert len(state["keys"]) <= reactions.MAX_KEYS
    assert len(json.dumps(state)) < 200_000


def test_the_plan_is_kept_for_one_interval():
    state = {}
    assert reactions.planned(state, 0.0) is None
    kept = reactions.keep_plan(state, 100.0, {"node-a": ["energy-node-a-sensor"]}, 30)
    assert reactions.planned(state, 129.0) is kept
    assert reactions.planned(state, 130.0) is None


@pytest.mark.parametrize("minion, name, why", [
    ("node-a", "energy-node-a-sensor", ""),
    ("node-b", "energy-node-a-sensor", "node-b runs no container of the plan computed on the master"),
    ("node-a", "energy-node-a-formula-made_up",
     "'energy-node-a-formula-made_up' is not a container the plan computed on the master places on node-a"),
])
def test_the_plan_decides_which_minion_runs_which_container(minion, name, why):
    kept = {"containers": {"node-a": ["energy-node-a-sensor"]}}
    assert reactions.refused(kept, minion, name) == why


def test_no_plan_refuses_everything_with_the_reason():
    kept = {"containers": {}, "error": "energy:roles: bad value"}
    assert reactions.refused(kept, "node-a", "energy-node-a-sensor").startswith(
        "the master has no plan to check it against (energy:roles: bad value")


def test_the_state_file_survives_across_calls_and_threads(tmp_path):
    path = str(tmp_path / "energy" / reactions.STATE_FILE)
    admitted = []

    def react():
        with reactions.locked(path) as state:
            admitted.append(reactions.admit(state, KEY, 1000.0, 10)[0])

    threads = [threading.Thread(target=react) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted.count(True) == 1 and admitted.count(False) == 19
    with reactions.locked(path) as state:
        assert reactions.dropped(state, KEY) == 19


def test_a_damaged_state_file_is_an_empty_state(tmp_path):
    path = tmp_path / reactions.STATE_FILE
    path.write_text("{not json")
    with reactions.locked(str(path)) as state:
        assert state == {}
        reactions.admit(state, KEY, 0.0, 10)
    assert json.loads(path.read_text())["keys"][KEY]["last"] == 0.0
