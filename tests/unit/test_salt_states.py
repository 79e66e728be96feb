"""The states and the runner with Salt's loader mocked: energy_heal.healthy, energy_heal.stays_up,
energy_heal.events_engine, and the reactor's energy.react_event."""

import logging
import multiprocessing
import stat
import sys
import time
from unittest import mock

import pytest
import yaml
from energy_core import container_lock, trust
from energy_core import maintenance as maintenance_core

from tests.unit.loader_mocks import (  # noqa: F401  the fixtures are used by name  pylint: disable=unused-import
    CPU, DEFAULTS_TEXT, FACTS, FORMULA, MINION, RUN, SENSOR, STATE_SECRET, cachedir, conf_file, configure_loader_modules, energy_mod,
    energy_runner, energy_state, engine_on, engine_path, inspected, module_logs, module_opts, module_salt, pillar,
    runner_opts, state_opts, state_salt, state_states, heal_state)


# --------------------------------------------------------------------------- energy_heal.healthy (state)



LABEL_CONFIG = energy_state.names.LABEL_CONFIG


def undigested(running):
    """The arguments docker_container.running was called with once, without the labels the state
    adds (the configuration digest, tested below)."""
    running.assert_called_once()
    called = dict(running.call_args.kwargs)
    labels = {k: v for k, v in called.pop("labels", {}).items() if k != LABEL_CONFIG}
    return dict(called, labels=labels) if labels else called


def test_healthy_container_is_left_as_it_is(state_salt, state_states):
    ret = heal_state.healthy(FORMULA, "formula", RUN)
    assert ret == {"name": FORMULA, "changes": {}, "result": True, "comment": f"formula container {FORMULA} is healthy"}
    state_salt["docker.inspect_container"].assert_called_once_with(FORMULA)  # once per check
    state_states["docker_container.running"].assert_not_called()
    state_salt["docker.rm"].assert_not_called()
    state_salt["event.send"].assert_not_called()


def test_missing_container_is_recreated_and_the_heal_event_fired(state_salt, state_states, module_logs):
    # missing: to the check, then to energy.container_running (its shortcut looks first); then up
    missing = Exception("No such container")
    state_salt["docker.inspect_container"].side_effect = [missing, missing, inspected(age=1)]
    ret = heal_state.healthy(FORMULA, "formula", RUN, probe={}, trigger="docker die event")
    assert ret["result"] is True
    assert ret["comment"].startswith(f"recreated formula container {FORMULA} because the container is missing")
    assert undigested(state_states["docker_container.running"]) == dict(name=FORMULA, force=False, **RUN)
    state_salt["docker.rm"].assert_not_called()  # nothing to remove
    state_salt["event.send"].assert_called_once()
    tag, data = state_salt["event.send"].call_args.args
    assert tag == "energy/heal/formula"
    assert data["healed"] is True
    assert {k: data[k] for k in ("minion", "container", "component", "reason", "trigger")} == {
        "minion": MINION, "container": FORMULA, "component": "formula", "reason": "the container is missing",
        "trigger": "docker die event"}
    assert ret["changes"] == {"recreated": data}
    assert any(r.levelno == logging.WARNING and r.getMessage().startswith(f"energy heal: formula container {FORMULA} "
                                                                          "is unhealthy (the container is missing")
               for r in module_logs.records)


def test_stopped_container_is_replaced_by_docker_container_running_not_removed_first(state_salt, state_states):
    # docker_container.running (force) makes the new container before it removes the old one
    state_salt["docker.inspect_container"].side_effect = [inspected("exited"), inspected()]
    ret = heal_state.healthy(SENSOR, "sensor", RUN)
    assert ret["result"] is True
    state_salt["docker.rm"].assert_not_called()
    assert undigested(state_states["docker_container.running"]) == dict(name=SENSOR, force=True, **RUN)
    assert state_salt["event.send"].call_args.args[1]["reason"] == "the container is exited"


def test_an_unhealthy_container_whose_image_is_gone_is_left_as_it_is(state_salt, state_states):
    state_salt["docker.inspect_container"].return_value = inspected("exited")
    state_salt["docker.inspect_image"].side_effect = Exception("No such image")
    ret = heal_state.healthy(SENSOR, "sensor", RUN)
    assert ret["result"] is False
    repository, _, tag = RUN["image"].rpartition(":")
    assert f"its image {repository} (tag {tag}) is not on {MINION}" in ret["comment"]
    assert "left as they are" in ret["comment"] and f"docker pull {RUN['image']}" in ret["comment"]
    state_states["docker_container.running"].assert_not_called()
    state_salt["docker.rm"].assert_not_called()


def test_a_check_that_cannot_run_is_unhealthy_with_its_reason_and_recreates_nothing(state_salt, state_states,
                                                                                    closed_port):
    probe = {"backlog": {"uri": f"mongodb://127.0.0.1:{closed_port}", "database": "d", "collection": "c", "max": 1}}
    ret = heal_state.healthy(FORMULA, "formula", RUN, probe=probe, grace=0)
    assert ret["result"] is False
    assert ret["comment"].startswith(f"formula container {FORMULA} is unhealthy: cannot check: the formula's backlog")
    state_states["docker_container.running"].assert_not_called()
    # no recreation to announce; the news that it is unhealthy, once
    (tag, data), = [c.args for c in state_salt["event.send"].call_args_list]
    assert tag == "energy/unhealthy/formula" and data["reason"].startswith("cannot check: the formula's backlog")
    heal_state.healthy(FORMULA, "formula", RUN, probe=probe, grace=0)
    assert state_salt["event.send"].call_count == 1


def test_recreation_that_does_not_heal_fails_and_says_so(state_salt, state_states):
    state_salt["docker.inspect_container"].side_effect = [None, None, inspected("restarting")]
    ret = heal_state.healthy(FORMULA, "formula", RUN, timeout=0)
    assert ret["result"] is False
    assert "still unhealthy: the container is restarting" in ret["comment"]
    assert state_salt["event.send"].call_args.args[1]["healed"] is False


def test_failed_docker_container_running_fails_the_state(state_salt, state_states):
    state_salt["docker.inspect_container"].side_effect = Exception("No such container")
    state_states["docker_container.running"].return_value = {"result": False, "changes": {},
                                                              "comment": "image not found"}
    ret = heal_state.healthy(FORMULA, "formula", RUN)
    assert ret["result"] is False and ret["comment"].endswith("still unhealthy: image not found")
    assert state_salt["event.send"].call_args.args[1]["healed"] is False


def _hold_lock(cachedir, name, seconds, ready):
    with container_lock.held(cachedir, name):
        ready.set()
        time.sleep(seconds)


def _other_job_holds(cachedir, name, seconds):
    """Another job of this minion (a process) holding container ``name``'s lock for ``seconds``."""
    ready = multiprocessing.Event()
    other = multiprocessing.Process(target=_hold_lock, args=(str(cachedir), name, seconds, ready))
    other.start()
    assert ready.wait(10)
    return other


def test_the_recreation_runs_under_the_container_lock(state_salt, state_states, cachedir):
    lock_file = container_lock.path(str(cachedir), FORMULA)
    held = []
    state_salt["docker.inspect_container"].side_effect = [None, None, inspected(age=1)]
    state_states["docker_container.running"].side_effect = lambda **kw: held.append(
        any(path == lock_file for _, path in sys.__dict__.get("_energy_container_locks", ()))) or {
        "result": True, "changes": {}, "comment": ""}
    assert heal_state.healthy(FORMULA, "formula", RUN)["result"] is True
    assert held == [True]


def test_a_job_that_waited_for_the_lock_judges_again_and_recreates_nothing(state_salt, state_states, cachedir):
    # the other job (the heal schedule, a reaction) found it dead and recreated it meanwhile
    other = _other_job_holds(cachedir, FORMULA, 1.0)
    started = time.monotonic()
    ret = heal_state.healthy(FORMULA, "formula", RUN)
    other.join()
    assert time.monotonic() - started > 0.5  # it waited for the other job
    assert ret["result"] is True and ret["comment"] == f"formula container {FORMULA} is healthy"
    state_states["docker_container.running"].assert_not_called()
    state_salt["event.send"].assert_not_called()


def test_a_container_another_job_holds_too_long_is_left_to_it(state_salt, state_states, cachedir):
    other = _other_job_holds(cachedir, FORMULA, 3.0)
    try:
        state_salt["docker.inspect_container"].side_effect = Exception("No such container")
        ret = heal_state.healthy(FORMULA, "formula", RUN, grace=0, timeout=0.3)
    finally:
        other.join()
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].startswith(f"formula container {FORMULA} left to the other job: another job of this minion")
    state_salt["docker.inspect_container"].assert_not_called()  # judged by the job that holds it
    state_states["docker_container.running"].assert_not_called()


def test_healthy_in_test_mode_only_says_what_it_would_do(state_opts, state_salt, state_states):
    state_opts["test"] = True
    state_salt["docker.inspect_container"].side_effect = Exception("No such container")
    ret = heal_state.healthy(FORMULA, "formula", RUN)
    assert ret["result"] is None
    assert ret["changes"] == {"recreate": {"reason": "the container is missing"}}
    assert ret["comment"] == f"would recreate formula container {FORMULA} because the container is missing"
    state_states["docker_container.running"].assert_not_called()
    state_salt["docker.rm"].assert_not_called()
    state_salt["event.send"].assert_not_called()


def test_healthy_leaves_a_container_in_maintenance_alone(state_salt, state_states, cachedir):
    maintenance_core.write(str(cachedir / "energy" / "maintenance.json"),
                                      {"formula": {"reason": "tuning", "since": time.time(), "until": None}})
    state_salt["docker.inspect_container"].side_effect = Exception("No such container")
    ret = heal_state.healthy(FORMULA, "formula", RUN)
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"].startswith(f"formula container {FORMULA} left alone: maintenance on formula since ")
    assert "(tuning)" in ret["comment"]
    state_salt["docker.inspect_container"].assert_not_called()
    state_states["docker_container.running"].assert_not_called()
    state_salt["docker.rm"].assert_not_called()
    state_salt["event.send"].assert_not_called()



# --------------------------------------------------------------------------- energy_heal.events_engine (state)

MAIN_ENGINES = [{"custom": {"interval": 5}}]


@pytest.fixture
def no_restart():
    """No test may restart a salt-minion: the detached restart is replaced, and must not be reached."""
    with mock.patch.object(heal_state, "_restart_minion_later", side_effect=AssertionError("restart")) as later:
        yield later


def wanted_engine_file():
    return heal_state.healing.engine_content(MINION, MAIN_ENGINES)


def test_events_engine_writes_the_config_keeping_the_main_engines(engine_path, state_salt, no_restart):
    ret = heal_state.events_engine(str(engine_path), restart=False)
    assert engine_path.read_text() == wanted_engine_file()
    engines = yaml.safe_load(engine_path.read_text())["engines"]
    assert engines[0] == {"custom": {"interval": 5}} and "energy-docker-events" in engines[2]
    assert engines[1] == {"energy-container-names": {"engine_module": "energy_names"}}
    assert ret["changes"]["config"] == {"old": None, "new": str(engine_path)}
    assert ret["comment"].startswith(f"{engine_path} written; salt-minion needs a restart to start")
    assert ret["result"] is True
    no_restart.assert_not_called()


def test_events_engine_warns_naming_the_minion_when_it_may_not_restart(engine_path, state_salt, no_restart):
    engine_path.parent.mkdir()
    engine_path.write_text(wanted_engine_file())
    ret = heal_state.events_engine(str(engine_path), restart=False)
    assert ret["changes"] == {}
    assert ret["result"] is True
    assert len(ret["warnings"]) == 1
    assert ret["warnings"][0].startswith(f"restart salt-minion on {MINION} to start the docker_events engine")
    assert "energy:heal:events:restart_minion is false" in ret["warnings"][0]


def test_events_engine_without_a_way_to_restart_warns_too(engine_path, state_salt, no_restart):
    # no pidfile, no pid grain: this minion cannot be restarted by the formula
    ret = heal_state.events_engine(str(engine_path))
    assert engine_path.exists()
    assert "no systemd, minion_restart_command or daemon mode" in ret["warnings"][0]
    assert MINION in ret["warnings"][0]


def test_events_engine_restarts_the_minion_once_it_can(engine_path, state_salt):
    with mock.patch.object(heal_state, "_can_restart_minion", return_value="systemd"), \
            mock.patch.object(heal_state, "_restart_minion_later", return_value="systemd") as later:
        ret = heal_state.events_engine(str(engine_path))
        later.assert_called_once_with("systemd")  # the way _can_restart_minion found
        assert ret["changes"]["minion"] == {"restart": "systemd", "to": "start the docker_events engine"}
        assert "warnings" not in ret
        later.return_value = None  # an earlier run scheduled it already
        ret = heal_state.events_engine(str(engine_path))
    assert "minion" not in ret["changes"]
    assert ret["comment"].endswith("(an earlier run scheduled it)")


def test_events_engine_in_test_mode_writes_nothing(engine_path, state_opts, state_salt, no_restart):
    state_opts["test"] = True
    ret = heal_state.events_engine(str(engine_path))
    assert not engine_path.exists()
    assert ret["result"] is None  # the engine is not loaded: a restart would be needed
    assert ret["changes"]["config"] == {"old": None, "new": str(engine_path)}
    assert ret["comment"].startswith(f"{engine_path} would be written; salt-minion needs a restart")


def test_events_engine_in_test_mode_with_the_engine_loaded(engine_path, state_opts, state_salt, no_restart):
    # no restart needed, but a file would be written: a pending change is result None in test mode
    state_opts["test"] = True
    state_salt["energy_heal.engine_loaded"].return_value = True
    ret = heal_state.events_engine(str(engine_path))
    assert not engine_path.exists()
    assert ret["result"] is None
    assert ret["changes"] == {"config": {"old": None, "new": str(engine_path)}}
    assert ret["comment"] == f"{engine_path} would be written; the docker_events engine is running"


def test_events_engine_in_place_and_loaded_changes_nothing(engine_path, state_salt, no_restart):
    heal_state.events_engine(str(engine_path), restart=False)
    written = engine_path.stat().st_mtime_ns
    state_salt["energy_heal.engine_loaded"].return_value = True
    ret = heal_state.events_engine(str(engine_path))
    assert ret["changes"] == {}
    assert ret["result"] is True
    assert "warnings" not in ret
    assert ret["comment"].endswith("the docker_events engine is running")
    assert engine_path.stat().st_mtime_ns == written


def test_events_engine_updates_an_old_config_and_needs_a_reload(engine_path, state_salt, no_restart):
    engine_path.parent.mkdir()
    engine_path.write_text("engines: []\n")
    state_salt["energy_heal.engine_loaded"].return_value = True
    ret = heal_state.events_engine(str(engine_path), restart=False)
    assert engine_path.read_text() == wanted_engine_file()
    assert ret["changes"]["config"] == {"old": "other content", "new": str(engine_path)}
    assert ret["warnings"][0].startswith(f"restart salt-minion on {MINION} to reload the docker_events engine")


def test_events_engine_disabled_removes_the_config(engine_path, state_salt, no_restart):
    heal_state.events_engine(str(engine_path), restart=False)
    assert engine_path.exists()
    ret = heal_state.events_engine(str(engine_path), enabled=False)
    assert not engine_path.exists()
    assert ret["changes"] == {"config": {"old": str(engine_path), "new": None}}
    assert ret["comment"] == f"{engine_path} removed; the docker_events engine is off"
    assert ret["result"] is True
    # once removed, nothing left to do
    again = heal_state.events_engine(str(engine_path), enabled=False)
    assert again["changes"] == {} and again["comment"] == "the docker_events engine is off"


def test_events_engine_disabled_while_running_stops_with_the_next_restart(engine_path, state_salt, no_restart):
    engine_path.parent.mkdir()
    engine_path.write_text(wanted_engine_file())
    state_salt["energy_heal.engine_loaded"].return_value = True
    ret = heal_state.events_engine(str(engine_path), enabled=False, restart=False)
    assert not engine_path.exists()
    assert "warnings" not in ret
    assert ret["comment"].endswith("the docker_events engine stops with the next salt-minion restart")



# --------------------------------------------------------------------------- energy.react_event (runner)


def docker_event(name=FORMULA, action="die", label=MINION):
    attributes = {"name": name, "image": "powerapi/smartwatts-formula:2.2.0"}
    if label is not None:
        attributes["energy.minion"] = label
    return {"Action": action, "Type": "container", "Actor": {"ID": "0" * 64, "Attributes": attributes}}


@pytest.fixture(autouse=True)
def master_plan(monkeypatch):
    """The plan the master computes (its pillar and mine are the module's here): node-a runs the
    formula and the sensor. Records each computation."""
    conf = energy_mod.config(secrets=True)
    full = energy_mod._plan(conf)  # pylint: disable=protected-access
    computed = []

    def compute():  # energy_plan.kept: what the last orch handed the minions
        computed.append(True)
        return {"containers": trust.containers_of(full), "interval": conf["heal"]["events"]["interval"]}

    monkeypatch.setattr(energy_runner, "_kept", compute)
    return computed


@pytest.fixture
def local_client():
    with mock.patch("salt.client.get_local_client") as get_local_client:
        get_local_client.return_value.__enter__.return_value.cmd_async.return_value = "20240101000000000000"
        yield get_local_client


@pytest.mark.parametrize("minion, event", [
    pytest.param(MINION, docker_event(name="energy-node-b-formula-intel_xeon"), id="another-minions-container"),
    pytest.param(MINION, docker_event(label="node-b"), id="labelled-for-another-minion"),
    pytest.param(MINION, docker_event(label=None), id="no-minion-label"),
    pytest.param("node-b", docker_event(), id="sent-by-another-minion"),
    pytest.param(MINION, docker_event(name="nginx"), id="not-a-stack-name"),
    pytest.param(MINION, docker_event(name="energy-node-a-postgres"), id="not-a-component"),
    pytest.param(MINION, docker_event(name="hopeful_turing"), id="temporary-container"),
    pytest.param(MINION, docker_event(name=FORMULA + "\n  cmd.run:\n    - name: rm -rf /"), id="yaml-in-name"),
    pytest.param(MINION, docker_event(name="energy-node-a-sensor\n"), id="newline-in-name"),
    pytest.param(MINION, docker_event(name="energy-node-a-" + "x" * 300), id="name-too-long"),
    pytest.param(MINION, docker_event(name=["energy-node-a-sensor"]), id="name-not-a-string"),
    pytest.param(MINION, "die", id="event-not-a-mapping"),
    pytest.param(MINION, None, id="no-event"),
    pytest.param(MINION, [docker_event()], id="event-a-list"),
    pytest.param(MINION, {"Action": "die"}, id="no-actor"),
    pytest.param(MINION, docker_event(action="start"), id="action-start"),
    pytest.param(MINION, docker_event(action="die\nrm"), id="action-forged"),
    pytest.param(None, docker_event(), id="no-minion"),
    pytest.param("", docker_event(), id="empty-minion"),
])
def test_react_event_drops_forged_events(minion, event, local_client):
    ret = energy_runner.react_event(minion=minion, event=event)
    assert ret["result"] is True
    assert ret["comment"].startswith("dropped: ")
    local_client.assert_not_called()


def test_react_event_has_the_minion_recreate_its_container(local_client, runner_opts):
    ret = energy_runner.react_event(minion=MINION, event=docker_event())
    local_client.assert_called_once_with(mopts=runner_opts)
    client = local_client.return_value.__enter__.return_value
    client.cmd_async.assert_called_once_with([MINION], "energy_heal.react", kwarg={"name": FORMULA, "action": "die"},
                                             tgt_type="list")
    assert ret == {"result": True,
                   "comment": f"energy_heal.react {FORMULA} die sent to {MINION} (job 20240101000000000000)"}


def test_react_event_passes_destroy_on_and_reports_a_publish_failure(local_client):
    client = local_client.return_value.__enter__.return_value
    client.cmd_async.return_value = 0  # LocalClient's "could not publish"
    ret = energy_runner.react_event(minion=MINION, event=docker_event(name=SENSOR, action="destroy"))
    client.cmd_async.assert_called_once_with([MINION], "energy_heal.react", kwarg={"name": SENSOR, "action": "destroy"},
                                             tgt_type="list")
    assert ret["result"] is False


def test_react_event_sends_one_react_per_container_per_interval(local_client, monkeypatch, module_logs):
    clock = [1000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    client = local_client.return_value.__enter__.return_value
    rets = []
    for _ in range(200):  # a flood: 200 events in 2 s
        rets.append(energy_runner.react_event(minion=MINION, event=docker_event()))
        clock[0] += 0.01
    assert client.cmd_async.call_count == 1
    assert rets[-1] == {"result": True, "dropped": 199,
                        "comment": f"dropped: at most one energy_heal.react per 10 s for {FORMULA} on {MINION}"}
    dropped_lines = [r.getMessage() for r in module_logs.records if "dropped" in r.getMessage()]
    assert dropped_lines == [f"energy reactor: {MINION}/{FORMULA}: event(s) dropped (rate limit: one reaction per "
                             "10 s), 1 so far"]
    # another container has its own limit; the same one again after the interval
    energy_runner.react_event(minion=MINION, event=docker_event(name=SENSOR))
    clock[0] = 1010.0
    energy_runner.react_event(minion=MINION, event=docker_event(action="destroy"))
    assert client.cmd_async.call_count == 3
    assert f"{MINION}/{FORMULA}: 199 event(s) dropped since the last reaction" in module_logs.text


def test_react_event_takes_the_interval_from_the_masters_pillar(local_client, monkeypatch, master_plan):
    kept = dict(energy_runner._kept(), interval=60)  # pylint: disable=protected-access
    monkeypatch.setattr(energy_runner, "_kept", lambda: kept)
    clock = [0.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    for clock[0] in (0.0, 30.0, 59.0, 60.0):
        energy_runner.react_event(minion=MINION, event=docker_event())
    assert local_client.return_value.__enter__.return_value.cmd_async.call_count == 2


@pytest.mark.parametrize("minion, name", [
    pytest.param(MINION, "energy-node-a-formula-amd_epyc", id="a-container-the-plan-does-not-have"),
    pytest.param(MINION, "energy-node-a-sensor-2", id="a-shard-the-plan-does-not-have"),
    pytest.param("node-b", "energy-node-b-formula-intel_xeon", id="a-minion-the-plan-does-not-have"),
])
def test_react_event_drops_what_the_masters_plan_does_not_place_there(minion, name, local_client, module_logs):
    # well-formed and labelled for the minion it names: only the plan computed on the master says no
    for _ in range(50):
        ret = energy_runner.react_event(minion=minion, event=docker_event(name=name, label=minion))
    local_client.assert_not_called()
    assert ret["comment"].startswith("dropped: ") and "plan computed on the master" in ret["comment"]
    assert ret["dropped"] == 50
    lines = [r.getMessage() for r in module_logs.records if "dropped" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"energy reactor: minion {minion!r}: event(s) dropped (")


def test_react_event_computes_the_plan_once_per_interval(local_client, master_plan, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    for i in range(100):
        clock[0] = i * 0.1
        energy_runner.react_event(minion=MINION, event=docker_event(name=f"energy-node-a-formula-x{i}"))
    assert len(master_plan) == 1
    clock[0] = 10.0
    energy_runner.react_event(minion=MINION, event=docker_event())
    assert len(master_plan) == 2


def test_react_event_drops_everything_while_the_master_has_no_plan(local_client, monkeypatch, module_logs):
    def broken():
        raise energy_runner.schema.PlanError("invalid energy pillar:\n  - energy:roles: bad value")

    monkeypatch.setattr(energy_runner, "_kept", broken)
    ret = energy_runner.react_event(minion=MINION, event=docker_event())
    local_client.assert_not_called()
    assert ret["comment"].startswith("dropped: the master has no plan to check it against (invalid energy pillar")
    assert "energy reactor: no plan on the master, reactions are dropped" in module_logs.text



# --------------------------------------------------------------------------- a container that does not stay up


def test_a_sensor_that_refuses_an_event_is_stopped_and_the_state_names_minion_event_and_fix(state_salt):
    state_salt["docker.inspect_container"].side_effect = [inspected(), {"State": {"Status": "restarting"},
                                                                        "RestartCount": 1}]
    state_salt["docker.logs"] = mock.MagicMock(
        return_value="pmu: found skylake 'Intel Skylake'\nconfig: json: Failed to add event 'BOGUS_EVENT' to group 'core'\n")
    state_salt["docker.stop"] = mock.MagicMock(return_value={"result": True})
    ret = heal_state.stays_up(SENSOR, "sensor", seconds=5, cpu=CPU)
    assert ret["result"] is False
    assert f"the hwpc-sensor on {MINION} refused its config" in ret["comment"]
    assert "'BOGUS_EVENT' (group core)" in ret["comment"] and "Fix: remove 'BOGUS_EVENT'" in ret["comment"]
    assert CPU in ret["comment"]
    state_salt["docker.stop"].assert_called_once_with(SENSOR, timeout=1)


def test_a_formula_that_exits_fails_with_its_last_output(state_salt):
    state_salt["docker.inspect_container"].side_effect = [inspected(), inspected("exited")]
    state_salt["docker.logs"] = mock.MagicMock(return_value="error: argument --cpu-tdp: invalid int value\n")
    state_salt["docker.stop"] = mock.MagicMock()
    ret = heal_state.stays_up(FORMULA, "formula", seconds=5)
    assert ret["result"] is False and "does not stay up (exited" in ret["comment"]
    assert "invalid int value" in ret["comment"]
    state_salt["docker.stop"].assert_not_called()


def test_a_container_that_stays_up_passes(state_salt):
    ret = heal_state.stays_up(SENSOR, "sensor", seconds=0.6)
    assert ret["result"] is True and ret["comment"].endswith("stays up (0.6 s since it started)")


def test_stays_up_in_test_mode_watches_nothing(state_opts, state_salt):
    state_opts["test"] = True
    ret = heal_state.stays_up(SENSOR, "sensor")
    assert ret["result"] is None
    state_salt["docker.inspect_container"].assert_not_called()


def test_a_container_left_in_restart_back_off_is_restarted_then_watched(state_salt):
    restarted = inspected(age=0)
    state_salt["docker.inspect_container"].side_effect = [{"State": {"Status": "restarting"}, "RestartCount": 7},
                                                          restarted, restarted, restarted, restarted]
    state_salt["docker.restart"] = mock.MagicMock(return_value={"result": True})
    ret = heal_state.stays_up(FORMULA, "formula", seconds=0.6)
    assert ret["result"] is True
    state_salt["docker.restart"].assert_called_once_with(FORMULA, timeout=1)


@pytest.fixture
def clock(monkeypatch):
    """A fake monotonic clock that time.sleep moves on: the seconds a watch waited."""
    now = [1000.0]
    monkeypatch.setattr(energy_state.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(energy_state.time, "sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))
    return now


def test_a_watch_ends_its_seconds_after_the_container_started(state_salt, clock):
    # started 3 s before the watch (the run started other containers meanwhile): 2 s more to watch
    state_salt["docker.inspect_container"].return_value = inspected(age=3)
    ret = heal_state.stays_up(FORMULA, "formula", seconds=5)
    assert ret["result"] is True and ret["comment"].endswith("stays up (5 s since it started)")
    assert 1.5 <= clock[0] - 1000 <= 2.5


def test_a_container_up_longer_than_the_watch_is_looked_at_once(state_salt, clock):
    state_salt["docker.inspect_container"].return_value = inspected(age=60)
    assert heal_state.stays_up(SENSOR, "sensor", seconds=5)["result"] is True
    assert clock[0] == 1000 and state_salt["docker.inspect_container"].call_count == 2


def test_a_restart_seen_as_a_new_start_time_fails_the_watch(state_salt, clock):
    # the restart count can read the same between two looks; the start time cannot
    state_salt["docker.inspect_container"].side_effect = [inspected(age=2), inspected(age=0)]
    state_salt["docker.logs"] = mock.MagicMock(return_value="error: cannot reach mongodb\n")
    ret = heal_state.stays_up(FORMULA, "formula", seconds=5)
    assert ret["result"] is False and "does not stay up (running" in ret["comment"]
    assert "cannot reach mongodb" in ret["comment"]



def test_container_running_masks_the_secrets_docker_container_running_returns(state_salt, state_states):
    # docker_container.running shows a changed environment in full: the password would reach the
    # job cache, the event bus and the orch output
    env = {"POWERAPI_INPUT_PULLER_URI": f"mongodb://energy-formula:{STATE_SECRET}@h:1"}
    state_states["docker_container.running"].return_value = {
        "name": FORMULA, "result": True, "comment": f"Container has a new environment: {STATE_SECRET}",
        "changes": {"container": {"Config": {"Env": {"old": [], "new": [f"URI={env['POWERAPI_INPUT_PULLER_URI']}"]}}}}}
    ret = energy_state.container_running(FORMULA, image="x:1", environment=env, __id__="ignored")
    called = state_states["docker_container.running"].call_args.kwargs
    assert {k: v for k, v in called.items() if k != "labels"} == {"name": FORMULA, "image": "x:1", "environment": env}
    assert list(called["labels"]) == [LABEL_CONFIG] and called["labels"][LABEL_CONFIG].startswith("hmac-sha256:")
    assert STATE_SECRET not in repr(ret) and "***" in repr(ret["changes"]) and "***" in ret["comment"]


def test_healthy_leaves_a_container_this_state_run_started_to_stays_up(state_salt, state_states):
    # the orch's last phase and the full schedule apply energy.heal with the components' SLS: a
    # sensor that refuses its config exits at once, and is stopped by its watch, not recreated here
    state_states["docker_container.running"].return_value = {"name": SENSOR, "result": True, "comment": "",
                                                             "changes": {"container_id": {"added": "abc"}}}
    state_salt["docker.inspect_container"].side_effect = Exception("No such container")
    assert energy_state.container_running(SENSOR, image="x:1")["changes"]
    state_states["docker_container.running"].reset_mock()
    state_salt["docker.inspect_container"].return_value = inspected("exited")
    state_salt["docker.inspect_container"].side_effect = None
    ret = heal_state.healthy(SENSOR, "sensor", RUN)
    assert ret["result"] is True and "started by this state run" in ret["comment"]
    state_states["docker_container.running"].assert_not_called()
    state_salt["event.send"].assert_not_called()
    # a container the run left as it was is judged as always
    state_salt["docker.inspect_container"].side_effect = [inspected("exited"), inspected()]
    assert heal_state.healthy(FORMULA, "formula", RUN)["changes"]["recreated"]["reason"] == "the container is exited"
    # so is a started Grafana or database: no energy_heal.stays_up watches those
    grafana = "energy-node-a-grafana"
    energy_state.__context__[energy_state.names.STARTED].add(grafana)
    state_salt["docker.inspect_container"].side_effect = [inspected("exited"), inspected()]
    assert heal_state.healthy(grafana, "grafana", RUN)["changes"]["recreated"]["reason"] == "the container is exited"


def test_container_running_in_test_mode_marks_nothing_as_started(state_opts, state_salt, state_states):
    state_opts["test"] = True
    state_states["docker_container.running"].return_value = {"name": SENSOR, "result": None, "comment": "",
                                                             "changes": {"container_id": {"added": "abc"}}}
    energy_state.container_running(SENSOR, image="x:1")
    assert SENSOR not in energy_state.__context__.get(energy_state.names.STARTED, ())


def test_a_recreation_by_heal_masks_secrets_too(state_salt, state_states):
    missing = Exception("No such container")
    state_salt["docker.inspect_container"].side_effect = [missing, missing, inspected(age=1)]
    state_states["docker_container.running"].return_value = {"result": True, "changes": {}, "comment": STATE_SECRET}
    state_states["docker_container.running"].return_value["result"] = False
    ret = heal_state.healthy(FORMULA, "formula", RUN, probe={})
    assert ret["result"] is False and STATE_SECRET not in repr(ret) and "***" in ret["comment"]


def test_a_watched_container_is_restarted_by_docker_container_s_own_watch_masked(state_salt, state_states):
    state_states["docker_container.mod_watch"] = mock.MagicMock(
        return_value={"name": SENSOR, "result": True, "comment": f"Replaced; env {STATE_SECRET}", "changes": {}})
    ret = energy_state.mod_watch(SENSOR, sfun="container_running", image="x:1", __reqs__={})
    called = state_states["docker_container.mod_watch"].call_args
    assert called.args == (SENSOR,) and called.kwargs["sfun"] == "running" and called.kwargs["image"] == "x:1"
    # the container it makes carries the digest a later run compares with
    assert called.kwargs["labels"][LABEL_CONFIG] == energy_state._with_digest(SENSOR, {"image": "x:1"})[1]
    assert STATE_SECRET not in ret["comment"]
    assert energy_state.mod_watch(SENSOR, sfun="healthy")["result"] is False


# --------------------------------------------------------------------------- configuration digest


def running_as(labels, image="sha256:0", running=True):
    return {"Image": image, "State": {"Running": running, "Status": "running" if running else "exited"},
            "Config": {"Labels": labels}}


def deploy(env):
    return energy_state.container_running(FORMULA, image="x:1", environment=env, labels={"energy.component": "formula"})


def test_a_container_made_with_the_same_configuration_is_not_compared_again(state_salt, state_states):
    deploy({"A": "1"})
    made = state_states["docker_container.running"].call_args.kwargs["labels"]
    state_states["docker_container.running"].reset_mock()
    state_salt["docker.inspect_container"].return_value = running_as(made)
    ret = deploy({"A": "1"})
    assert ret["result"] is True and ret["changes"] == {} and "already configured" in ret["comment"]
    state_states["docker_container.running"].assert_not_called()


@pytest.mark.parametrize("change", ["environment", "image", "stopped", "no label"])
def test_a_container_whose_configuration_image_or_state_differs_goes_to_docker_container(change, state_salt,
                                                                                         state_states):
    deploy({"A": "1"})
    made = state_states["docker_container.running"].call_args.kwargs["labels"]
    state_states["docker_container.running"].reset_mock()
    attrs = {"environment": running_as(made), "image": running_as(made, image="sha256:old"),
             "stopped": running_as(made, running=False), "no label": running_as({})}[change]
    state_salt["docker.inspect_container"].return_value = attrs
    deploy({"A": "2"} if change == "environment" else {"A": "1"})
    state_states["docker_container.running"].assert_called_once()


def test_the_digest_is_keyed_by_a_secret_of_the_minion_and_shows_no_password(state_opts, state_salt, state_states,
                                                                             cachedir):
    first = energy_state._with_digest(FORMULA, {"image": "x:1", "environment": {"P": STATE_SECRET}})[1]
    key = cachedir / "energy" / "config.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    assert energy_state._with_digest(FORMULA, {"image": "x:1", "environment": {"P": STATE_SECRET}})[1] == first
    assert STATE_SECRET not in first
    # another key (another minion, or a wiped cachedir) gives another digest for the same container
    key.write_bytes(b"k" * 32)
    assert energy_state._with_digest(FORMULA, {"image": "x:1", "environment": {"P": STATE_SECRET}})[1] != first


def test_a_missing_image_gives_no_digest_and_leaves_the_pull_to_docker_container(state_salt, state_states):
    state_salt["docker.inspect_image"].side_effect = Exception("No such image")
    deploy({"A": "1"})
    assert LABEL_CONFIG not in state_states["docker_container.running"].call_args.kwargs["labels"]


def test_heal_always_goes_to_docker_container(state_salt, state_states):
    # a recreation by energy_heal.healthy is never short-cut, even with a matching label
    deploy({"A": "1"})
    made = state_states["docker_container.running"].call_args.kwargs["labels"]
    state_states["docker_container.running"].reset_mock()
    state_salt["docker.inspect_container"].return_value = running_as(made)
    energy_state._running(FORMULA, force=True, image="x:1", environment={"A": "1"},
                          labels={"energy.component": "formula"})
    state_states["docker_container.running"].assert_called_once()


def test_the_recreation_handed_to_the_pipeline_runs_outside_the_states_loader_context(state_salt, state_states,
                                                                                       monkeypatch):
    """energy_health.check (an execution module) calls the state's recreation in its own loader
    context, where ``__states__`` does not resolve: the state binds its functions beforehand."""
    recreate = heal_state._recreator()
    monkeypatch.setattr(heal_state, "__states__", {}, raising=False)  # what that other context sees
    ret = recreate(FORMULA, dict(RUN, network_mode="energy"), True)
    assert ret["result"] is True
    state_states["energy_network.present"].assert_called_once_with(name="energy")
    assert state_states["docker_container.running"].call_args.kwargs["force"] is True
