"""energy.healthy's diagnosis: what counts as unhealthy for a container of the stack."""

import datetime
import importlib.util

import pytest

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("energy_states", ROOT / "_states" / "energy.py")
states = importlib.util.module_from_spec(spec)
spec.loader.exec_module(states)


def inspected(status="running", age=3600):
    started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
    return {"State": {"Status": status, "StartedAt": started.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")}}


def test_missing_and_stopped_containers():
    assert states._diagnose(None, {}, 60) == "the container is missing"
    assert states._diagnose(inspected("exited"), {}, 60) == "the container is exited"


def test_running_container_whose_port_is_closed(closed_port, open_port):
    assert "does not accept connections" in states._diagnose(inspected(), {"tcp": f"127.0.0.1:{closed_port}"}, 60)
    assert states._diagnose(inspected(), {"tcp": f"127.0.0.1:{open_port}"}, 60) is None


def test_http_service_that_does_not_answer(closed_port):
    reason = states._diagnose(inspected(), {"http": f"http://127.0.0.1:{closed_port}/ping"}, 60)
    assert reason.startswith(f"GET http://127.0.0.1:{closed_port}/ping") and "does not answer" in reason


def test_young_containers_are_not_judged_on_their_output(closed_port):
    # a formula's backlog check needs its MongoDB; within the grace period it is not asked
    probe = {"backlog": {"uri": f"mongodb://127.0.0.1:{closed_port}", "database": "d", "collection": "c", "max": 1}}
    assert states._diagnose(inspected(age=5), probe, grace=60) is None


def test_durations():
    assert states._duration_seconds("30d") == 30 * 86400
    assert states._duration_seconds("720h0m0s") == 30 * 86400
    assert states._duration_seconds("INF") == 0
    with pytest.raises(ValueError):
        states._duration_seconds("30 days")
