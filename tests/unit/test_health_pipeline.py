"""The one healing pipeline (``_modules/energy_health.py``) with Salt's loader mocked: each fact
gathered once per check, one writer of the health records, what the verdict says done, and the
news of a container left unhealthy fired once."""

import datetime
import importlib.util
import json
import os
import sys
import time
from unittest import mock

import pytest

from tests.conftest import ROOT

MINION = "node-a"


def inspected(status="running", age=3600):
    started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
    return {"State": {"Status": status, "StartedAt": started.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")}}


@pytest.fixture
def mod(tmp_path, monkeypatch, caplog):
    spec = importlib.util.spec_from_file_location("energy_salt_health", ROOT / "_modules" / "energy_health.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.CORE_ERROR is None, module.CORE_ERROR
    # its log records stay out of Salt's deferred stderr handler (printed after pytest closed it)
    monkeypatch.setattr(module.log, "propagate", False)
    module.log.addHandler(caplog.handler)
    module.__opts__ = {"cachedir": str(tmp_path / "cache"), "id": MINION, "test": False}
    module.__salt__ = {"docker.inspect_container": mock.Mock(return_value=inspected()),
                       "docker.inspect_image": mock.Mock(return_value={"Id": "sha256:x"}),
                       "docker.inspect_volume": mock.Mock(return_value={}),
                       "docker.logs": mock.Mock(return_value=""), "docker.ps": mock.Mock(return_value={"a": {}}),
                       "event.send": mock.Mock(), "state.running": mock.Mock(return_value=[])}
    module.asked = []

    def network_fact(name, probe):
        module.asked.append(name)
        return module.answers[name]

    monkeypatch.setattr(module.health, "network_fact", network_fact)
    module.answers = {}
    yield module
    module.log.removeHandler(caplog.handler)


def records(mod):
    return mod.health.read_records(mod.health.records_path(mod.__opts__["cachedir"]))


FORMULA = ("energy-node-a-formula-x", "formula", {"image": "smartwatts:2.1.2", "network_mode": "energy"},
           {"backlog": {"uri": "mongodb://u:p@10.0.0.5:27017", "database": "d", "collection": "c", "max": 100}})


def test_a_healthy_container_is_probed_once_and_recorded(mod):
    mod.answers = {"backlog": 5}
    ret = mod.check(*FORMULA, grace=60)
    assert ret["status"] == "healthy" and ret["result"] is True and mod.asked == ["backlog"]
    assert records(mod)[FORMULA[0]]["status"] == "healthy"
    mod.__salt__["event.send"].assert_not_called()


def test_a_held_container_is_not_even_inspected(mod):
    mod.maintenance.write(mod.maintenance.path_in(mod.__opts__["cachedir"]),
                               {"formula": {"reason": "disk", "since": time.time(), "until": None}})
    ret = mod.check(*FORMULA)
    assert ret["status"] == "held" and "left alone: maintenance on formula" in ret["comment"]
    mod.__salt__["docker.inspect_container"].assert_not_called()
    assert mod.asked == [] and records(mod)[FORMULA[0]]["status"] == "held"


def test_an_unhealthy_container_is_recreated_waited_for_and_announced(mod):
    mod.answers = {"backlog": 500}
    recreate = mock.Mock(return_value={"result": True, "changes": {"container_id": "new"}, "comment": ""})
    ret = mod.check(*FORMULA, recreate=recreate)
    recreate.assert_called_once_with(FORMULA[0], FORMULA[2], True)  # it existed: force
    assert mod.asked == ["backlog"]  # the new container, within no grace, is judged on running only
    assert ret["status"] == "recreated" and ret["result"] is True
    assert ret["comment"].startswith(f"recreated formula container {FORMULA[0]} because 500 sensor reports wait")
    tag, event = mod.__salt__["event.send"].call_args.args
    assert tag == "energy/heal/formula" and event["healed"] is True and event["trigger"] == "health check"
    assert records(mod)[FORMULA[0]]["status"] == "recreated"


def test_test_mode_says_what_it_would_recreate_and_does_nothing(mod):
    mod.__salt__["docker.inspect_container"].side_effect = Exception("No such container")
    recreate = mock.Mock()
    ret = mod.check(*FORMULA, recreate=recreate, test=True)
    assert ret["result"] is None and ret["comment"] == (f"would recreate formula container {FORMULA[0]} because "
                                                        "the container is missing")
    recreate.assert_not_called()
    mod.__salt__["event.send"].assert_not_called()
    assert records(mod) == {}


def test_test_mode_keeps_no_freshness_record_and_a_real_check_does(mod):
    sensor = ("energy-node-a-sensor", "sensor", {"image": "hwpc-sensor:1.3.0"},
              {"fresh": {"url": "http://i:8086", "database": "d", "sensor": MINION, "max_age": 60}})
    seen = mod.health.seen_path(mod.__opts__["cachedir"])
    mod.answers = {"newest": time.time() - 5, "targets": ["rapl", "global", "web"]}
    assert mod.check(*sensor, test=True)["status"] == "healthy"
    assert not os.path.exists(seen)  # test=True writes no file
    assert mod.check(*sensor)["status"] == "healthy"
    assert os.path.exists(seen)


def test_a_recreation_without_a_state_waits_for_a_state_run_without_the_lock_then_judges_again(mod, monkeypatch):
    # a state run of this minion (the orch) may be waiting for the container's lock to recreate it
    # itself: the heal schedule's check lets go of the lock while it waits, then judges again
    monkeypatch.setattr(mod, "RETRY_SECONDS", 0.05)
    lock_file = mod.container_lock.path(mod.__opts__["cachedir"], FORMULA[0])
    lock_held_while_asked = []

    def state_running():
        lock_held_while_asked.append(any(p == lock_file for _, p in sys.__dict__.get("_energy_container_locks", ())))
        return ["the orch's state.apply"] if len(lock_held_while_asked) == 1 else []

    mod.__salt__["state.running"] = mock.Mock(side_effect=state_running)
    # dead at the first look; the state run recreated it meanwhile
    mod.__salt__["docker.inspect_container"].side_effect = [None, inspected()]
    mod.answers = {"backlog": 5}
    monkeypatch.setattr(mod, "_recreate", mock.Mock())
    ret = mod.check(*FORMULA)
    assert ret["status"] == "healthy" and lock_held_while_asked == [True]
    mod._recreate.assert_not_called()
    mod.__salt__["event.send"].assert_not_called()


def test_a_state_run_that_goes_on_past_the_deadline_leaves_the_container_to_it(mod, monkeypatch):
    monkeypatch.setattr(mod, "RETRY_SECONDS", 0.05)
    mod.__salt__["state.running"] = mock.Mock(return_value=["the orch's state.apply"])
    mod.__salt__["docker.inspect_container"].side_effect = Exception("No such container")
    monkeypatch.setattr(mod, "_recreate", mock.Mock())
    ret = mod.check(*FORMULA, grace=0, timeout=0.2)
    assert ret["status"] == "busy" and ret["result"] is False
    assert ret["comment"] == (f"formula container {FORMULA[0]} left to another state run of this minion: "
                              "[\"the orch's state.apply\"]")
    mod._recreate.assert_not_called()
    mod.__salt__["event.send"].assert_not_called()


def test_a_recreation_without_a_state_makes_sure_of_the_network_first(mod, monkeypatch):
    calls = []

    class State:
        def __init__(self, opts, initial_pillar):
            assert initial_pillar  # the pillar this minion holds: no master asked
            assert opts["test"] is False

        def verify_data(self, low):
            return []

        def _mod_init(self, low):
            pass

        def call(self, low):
            calls.append((low["state"], low["fun"], low["name"], low.get("force")))
            return {"result": True, "changes": {}, "comment": ""}

    import salt.state  # pylint: disable=import-outside-toplevel
    import salt.utils.state  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(salt.state, "State", State)
    monkeypatch.setattr(salt.utils.state, "get_sls_opts", lambda opts: dict(opts))
    mod.__pillar__ = {"energy": {"x": 1}}
    assert mod._recreate(FORMULA[0], FORMULA[2], False)["result"] is True
    assert calls == [("energy_network", "present", "energy", None),
                     ("energy", "container_running", FORMULA[0], False)]


def test_a_silent_sensor_is_left_with_the_reason_and_the_fix_and_announced_once(mod, tmp_path):
    config = tmp_path / "energy-node-a-sensor.json"
    config.write_text(json.dumps({"cgroup_basepath": str(tmp_path / "no-such-basepath"),
                                  "system": {"rapl": {"events": ["RAPL_ENERGY_PKG"]}},
                                  "container": {"core": {"events": ["LLC_MISSES"]}}}))
    sensor = ("energy-node-a-sensor", "sensor",
              {"image": "hwpc-sensor:1.3.0", "binds": [f"{config}:/etc/hwpc-sensor/config.json:ro"]},
              {"fresh": {"url": "http://i:8086", "database": "d", "sensor": MINION, "max_age": 60}})
    mod.answers = {"newest": time.time() - 1000, "refuses": None}
    for _ in range(2):
        ret = mod.check(*sensor)
        assert ret["status"] == "left" and ret["result"] is False
        assert "no-such-basepath does not exist on its host" in ret["comment"] and "Fix:" in ret["comment"]
    assert mod.asked == ["newest", "refuses"] * 2  # once per check
    assert mod.__salt__["docker.logs"].call_count == 2
    (tag, event), = [c.args for c in mod.__salt__["event.send"].call_args_list]  # once: the second is no news
    assert tag == "energy/unhealthy/sensor" and event["container"] == "energy-node-a-sensor"
    assert records(mod)["energy-node-a-sensor"]["status"] == "unhealthy"
