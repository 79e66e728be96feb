"""The Salt-facing layers of the formula with Salt's loader mocked (pytest-salt-factories'
``configure_loader_modules``): the execution module's maintenance switch and ``energy.react``, the
``energy.healthy`` and ``energy.events_engine`` states, and the runner's ``energy.react_event``.

The three files are all called ``energy.py``: each is imported here under its own name. Salt
itself (the loader, the event bus, Docker) is replaced by mocks; the pure core runs for real."""

import datetime
import fcntl
import importlib.util
import logging
import os
import stat
import time
from unittest import mock

import pytest
import yaml
from salt.exceptions import CommandExecutionError

from tests.conftest import ROOT


def _import(kind):
    spec = importlib.util.spec_from_file_location(f"energy_salt_{kind.strip('_')}", ROOT / kind / "energy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.core is not None, module.CORE_ERROR
    return module


energy_mod = _import("_modules")
energy_state = _import("_states")
energy_runner = _import("_runners")

MINION = "node-a"
CPU = "Intel(R) Xeon(R) CPU @ 2.10GHz"  # slug intel_xeon
FACTS = {"cpu_name": CPU, "cpu_vendor": "intel", "cpu_family": 6, "cpu_model": 0x55, "cpu_count": 8,
         "rapl_domains": ["package"], "pmu_events": ["LLC_MISSES", "INSTRUCTIONS_RETIRED"], "virtual": False,
         "cgroup_version": 2, "address": "10.0.0.1"}
FORMULA = f"energy-{MINION}-formula-intel_xeon"
SENSOR = f"energy-{MINION}-sensor"
DEFAULTS_TEXT = (ROOT / "energy" / "defaults.yaml").read_text()


def inspected(status="running", age=3600):
    """What docker.inspect_container says about a container started ``age`` seconds ago."""
    started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
    return {"State": {"Status": status, "StartedAt": started.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")}}


# --------------------------------------------------------------------------- loader mocks


@pytest.fixture(autouse=True)
def module_logs(caplog):
    """The modules' log records, kept out of Salt's deferred stderr handler (which would print
    them when the interpreter exits, after pytest has closed the stream it captured)."""
    loggers = [logging.getLogger(m.__name__) for m in (energy_mod, energy_state, energy_runner)]
    for logger in loggers:
        caplog.set_level(logging.INFO, logger=logger.name)
        logger.addHandler(caplog.handler)
        logger.propagate = False
    try:
        yield caplog
    finally:
        for logger in loggers:
            logger.removeHandler(caplog.handler)
            logger.propagate = True


@pytest.fixture
def conf_file(tmp_path):
    """The minion's main config file: it runs an engine of its own, which the engine file keeps."""
    path = tmp_path / "etc" / "minion"
    path.parent.mkdir()
    path.write_text("engines:\n  - custom:\n      interval: 5\n")
    return path


@pytest.fixture
def engine_path(conf_file):
    return conf_file.parent / "minion.d" / "energy-events.conf"


@pytest.fixture
def cachedir(tmp_path):
    path = tmp_path / "cache"
    path.mkdir()
    return path


@pytest.fixture
def pillar():
    return {"energy": {"control": MINION, "grafana": {"admin_password": "unit-test-secret"}}}


@pytest.fixture
def module_opts(conf_file, cachedir):
    return {"id": MINION, "conf_file": str(conf_file), "cachedir": str(cachedir), "test": False}


@pytest.fixture
def module_salt():
    return {
        "event.send": mock.MagicMock(return_value=True),
        "state.single": mock.MagicMock(return_value={"energy_|-x_|-x_|-healthy": {"result": True, "changes": {}}}),
        "cp.get_file_str": mock.MagicMock(return_value=DEFAULTS_TEXT),
        "mine.get": mock.MagicMock(side_effect=lambda tgt, fun, tgt_type=None: {MINION: dict(FACTS)}),
    }


@pytest.fixture
def state_opts(conf_file, cachedir):
    return {"id": MINION, "conf_file": str(conf_file), "cachedir": str(cachedir), "test": False}


@pytest.fixture
def state_salt():
    return {
        "energy.held": mock.MagicMock(return_value=""),
        "energy.engine_loaded": mock.MagicMock(return_value=False),
        "docker.inspect_container": mock.MagicMock(return_value=inspected()),
        "docker.rm": mock.MagicMock(return_value=True),
        "docker.inspect_image": mock.MagicMock(return_value={"Id": "sha256:0"}),
        "event.send": mock.MagicMock(return_value=True),
    }


@pytest.fixture
def state_states():
    return {"docker_container.running": mock.MagicMock(return_value={"result": True, "changes": {}, "comment": ""})}


@pytest.fixture
def runner_opts(conf_file):
    return {"conf_file": str(conf_file)}


@pytest.fixture
def configure_loader_modules(module_opts, module_salt, pillar, state_opts, state_salt, state_states, runner_opts):
    return {
        energy_mod: {"__opts__": module_opts, "__salt__": module_salt, "__pillar__": pillar, "__grains__": {},
                     "__context__": {}},
        energy_state: {"__opts__": state_opts, "__salt__": state_salt, "__states__": state_states,
                       "__grains__": {}, "__context__": {}},
        energy_runner: {"__opts__": runner_opts, "__salt__": {}, "__context__": {}},
    }


# --------------------------------------------------------------------------- energy.maintenance


def test_maintenance_on_writes_a_private_window_and_fires_the_event(module_salt, cachedir):
    before = time.time()
    entries = energy_mod.maintenance("on", "formula", reason="moving the disk", hours=2)
    window = entries["formula"]
    assert window["reason"] == "moving the disk"
    assert before <= window["since"] <= time.time()
    assert window["until"] == pytest.approx(window["since"] + 2 * 3600)
    path = cachedir / "energy" / "maintenance.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert energy_mod.maintenance("status") == entries  # what was written reads back
    module_salt["event.send"].assert_called_once_with(
        "energy/maintenance/on", {"minion": MINION, "what": "formula", "reason": "moving the disk", "ended": []})


def test_maintenance_without_hours_lasts_until_off(module_salt):
    assert energy_mod.maintenance("on", "all")["all"]["until"] is None
    assert module_salt["event.send"].call_args.args[0] == "energy/maintenance/on"


def test_maintenance_cli_yaml_booleans_are_on_and_off():
    # `salt node-a energy.maintenance on` gives True: the CLI's YAML reads a bare on as a boolean
    assert "sensor" in energy_mod.maintenance(True, "sensor")
    assert energy_mod.maintenance(False, "sensor") == {}


def test_maintenance_off_ends_one_window_or_all(module_salt):
    energy_mod.maintenance("on", "formula")
    energy_mod.maintenance("on", SENSOR, reason="new kernel")
    energy_mod.maintenance("on", "mongo")
    module_salt["event.send"].reset_mock()

    assert sorted(energy_mod.maintenance("off", "formula")) == sorted(["mongo", SENSOR])
    module_salt["event.send"].assert_called_once_with(
        "energy/maintenance/off", {"minion": MINION, "what": "formula", "reason": "", "ended": ["formula"]})

    # a window that is not open ends nothing (the event still says what was asked)
    energy_mod.maintenance("off", "grafana")
    assert module_salt["event.send"].call_args.args[1]["ended"] == []

    assert energy_mod.maintenance("off", "all") == {}
    assert module_salt["event.send"].call_args.args[1]["ended"] == sorted(["mongo", SENSOR])
    assert energy_mod.maintenance("status") == {}


def test_maintenance_status_changes_nothing(module_salt, cachedir):
    assert energy_mod.maintenance() == {}
    assert not (cachedir / "energy" / "maintenance.json").exists()
    module_salt["event.send"].assert_not_called()


@pytest.mark.parametrize("args, bad", [
    (("maybe", "all"), "bad action 'maybe'"),
    (("on", "nginx"), "bad target 'nginx'"),
    (("off", "Formula"), "bad target 'Formula'"),
])
def test_maintenance_rejects_bad_input_with_a_fix(args, bad, module_salt, cachedir):
    with pytest.raises(CommandExecutionError, match="Fix:") as info:
        energy_mod.maintenance(*args)
    assert bad in str(info.value)
    assert not (cachedir / "energy" / "maintenance.json").exists()
    module_salt["event.send"].assert_not_called()


@pytest.mark.parametrize("hours", [0, -1, "soon"])
def test_maintenance_rejects_bad_hours_with_a_fix(hours, module_salt):
    with pytest.raises(CommandExecutionError, match=r"bad hours .*Fix: a positive number"):
        energy_mod.maintenance("on", "formula", hours=hours)
    module_salt["event.send"].assert_not_called()


def test_held_names_the_window_of_the_container_its_component_or_all():
    assert energy_mod.held(FORMULA, "formula") == ""

    energy_mod.maintenance("on", "all", reason="datacenter move")
    reason = energy_mod.held(FORMULA, "formula")
    assert reason.startswith("maintenance on all since ") and "(datacenter move)" in reason
    assert reason.endswith(f"resume with: salt {MINION} energy.maintenance off all")

    energy_mod.maintenance("on", "formula", hours=1)
    reason = energy_mod.held(FORMULA, "formula")
    assert reason.startswith("maintenance on formula since ") and " until " in reason
    assert energy_mod.held(SENSOR, "sensor").startswith("maintenance on all ")  # other components: 'all'

    energy_mod.maintenance("on", FORMULA, reason="debugging")
    assert energy_mod.held(FORMULA, "formula").startswith(f"maintenance on {FORMULA} since ")

    energy_mod.maintenance("off", "all")
    assert energy_mod.held(FORMULA, "formula") == ""


def test_held_ignores_an_ended_window(cachedir):
    now = time.time()
    energy_mod.core.maintenance.write(str(cachedir / "energy" / "maintenance.json"),
                                      {"formula": {"reason": "", "since": now - 7200, "until": now - 3600}})
    assert energy_mod.held(FORMULA, "formula") == ""
    assert energy_mod.maintenance("status") == {}


# --------------------------------------------------------------------------- energy.react


@pytest.fixture
def engine_on(engine_path):
    """Event-driven healing is on on this minion: its engine file exists."""
    engine_path.parent.mkdir()
    engine_path.write_text("engines: []\n")
    return engine_path


def formula_spec():
    return next(c for c in energy_mod.node()["containers"] if c["name"] == FORMULA)


def test_react_skips_when_the_engine_file_is_absent(module_salt, engine_path):
    ret = energy_mod.react(FORMULA, "die")
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == f"event-driven healing is off on this minion ({engine_path} is absent)"
    assert energy_mod.engine_file() == str(engine_path)
    module_salt["state.single"].assert_not_called()


def test_react_skips_when_event_healing_is_off(module_salt, pillar, engine_on):
    pillar["energy"]["heal"] = {"events": {"enabled": False}}
    ret = energy_mod.react(FORMULA, "die")
    assert ret["result"] is True
    assert ret["comment"] == "energy:heal:events:enabled is false"
    module_salt["state.single"].assert_not_called()


@pytest.mark.parametrize("name", ["energy-node-b-formula-intel_xeon", "energy-node-a-formula-amd_epyc", "nginx"])
def test_react_skips_a_name_not_in_this_minions_plan(name, module_salt, engine_on):
    ret = energy_mod.react(name, "destroy")
    assert ret["result"] is True
    assert ret["comment"] == "not a container of this minion's plan: left alone"
    module_salt["state.single"].assert_not_called()


def test_react_skips_a_component_not_healed(module_salt, pillar, engine_on):
    pillar["energy"]["heal"] = {"components": ["sensor", "mongo"]}
    ret = energy_mod.react(FORMULA, "die")
    assert ret["comment"] == "formula is not in energy:heal:components: left alone"
    module_salt["state.single"].assert_not_called()


def test_react_leaves_a_container_in_maintenance_alone(module_salt, engine_on):
    energy_mod.maintenance("on", "formula", reason="tuning")
    ret = energy_mod.react(FORMULA, "die")
    assert ret["result"] is True
    assert ret["comment"].startswith("left alone: maintenance on formula since ") and "(tuning)" in ret["comment"]
    module_salt["state.single"].assert_not_called()


def test_react_recreates_with_energy_healthy(module_salt, engine_on):
    spec = formula_spec()
    assert spec["health"]  # the formula's backlog probe: what energy.healthy must check
    ret = energy_mod.react(FORMULA, "die")
    assert ret is module_salt["state.single"].return_value
    module_salt["state.single"].assert_called_once_with(
        "energy.healthy", name=FORMULA, component="formula", run=spec["run"], probe=spec["health"],
        grace=90, timeout=60, trigger="docker die event", queue=True)
    assert "retcode" not in energy_mod.__context__


def test_react_passes_the_action_and_pillar_timings_on(module_salt, pillar, engine_on):
    pillar["energy"]["heal"] = {"grace_seconds": 5, "timeout": 7}
    energy_mod.react(SENSOR, "destroy")
    kwargs = module_salt["state.single"].call_args.kwargs
    assert kwargs["name"] == SENSOR and kwargs["component"] == "sensor"
    assert (kwargs["grace"], kwargs["timeout"], kwargs["trigger"]) == (5, 7, "docker destroy event")
    assert "fresh" in kwargs["probe"]


def test_react_fails_the_job_when_the_recreation_fails(module_salt, engine_on):
    module_salt["state.single"].return_value = {"energy_|-x_|-x_|-healthy": {"result": False, "changes": {}}}
    energy_mod.react(FORMULA, "die")
    assert energy_mod.__context__["retcode"] == 1


def test_react_leaves_the_container_to_the_job_holding_its_lock(module_salt, cachedir, engine_on):
    lock_path = cachedir / "energy" / f"react-{FORMULA}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w", encoding="utf-8") as held_lock:
        fcntl.flock(held_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the first job, recreating it
        ret = energy_mod.react(FORMULA, "destroy")
    assert ret == {"result": True, "changes": {}, "comment": "another job is recreating it already"}
    module_salt["state.single"].assert_not_called()
    # the lock is the container's, not the module's: once released, the next event recreates
    energy_mod.react(FORMULA, "destroy")
    module_salt["state.single"].assert_called_once()


# --------------------------------------------------------------------------- energy.healthy (state)

RUN = {"image": "powerapi/smartwatts-formula:2.2.0", "network_mode": "host"}


def test_healthy_container_is_left_as_it_is(state_salt, state_states):
    ret = energy_state.healthy(FORMULA, "formula", RUN)
    assert ret == {"name": FORMULA, "changes": {}, "result": True, "comment": f"formula container {FORMULA} is healthy"}
    state_salt["docker.inspect_container"].assert_called_once_with(FORMULA)
    state_salt["energy.held"].assert_called_once_with(FORMULA, "formula")
    state_states["docker_container.running"].assert_not_called()
    state_salt["docker.rm"].assert_not_called()
    state_salt["event.send"].assert_not_called()


def test_missing_container_is_recreated_and_the_heal_event_fired(state_salt, state_states, module_logs):
    state_salt["docker.inspect_container"].side_effect = [Exception("No such container"), inspected(age=1)]
    ret = energy_state.healthy(FORMULA, "formula", RUN, probe={}, trigger="docker die event")
    assert ret["result"] is True
    assert ret["comment"].startswith(f"recreated formula container {FORMULA} because the container is missing")
    state_states["docker_container.running"].assert_called_once_with(name=FORMULA, force=False, **RUN)
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
    ret = energy_state.healthy(SENSOR, "sensor", RUN)
    assert ret["result"] is True
    state_salt["docker.rm"].assert_not_called()
    state_states["docker_container.running"].assert_called_once_with(name=SENSOR, force=True, **RUN)
    assert state_salt["event.send"].call_args.args[1]["reason"] == "the container is exited"


def test_an_unhealthy_container_whose_image_is_gone_is_left_as_it_is(state_salt, state_states):
    state_salt["docker.inspect_container"].return_value = inspected("exited")
    state_salt["docker.inspect_image"].side_effect = Exception("No such image")
    ret = energy_state.healthy(SENSOR, "sensor", RUN)
    assert ret["result"] is False
    assert f"image {RUN['image']} is not on {MINION}" in ret["comment"] and "left as it is" in ret["comment"]
    state_states["docker_container.running"].assert_not_called()
    state_salt["docker.rm"].assert_not_called()


def test_a_check_that_cannot_run_is_unhealthy_with_its_reason_and_recreates_nothing(state_salt, state_states,
                                                                                    closed_port):
    probe = {"backlog": {"uri": f"mongodb://127.0.0.1:{closed_port}", "database": "d", "collection": "c", "max": 1}}
    ret = energy_state.healthy(FORMULA, "formula", RUN, probe=probe, grace=0)
    assert ret["result"] is False
    assert ret["comment"].startswith(f"formula container {FORMULA} is unhealthy: cannot check: the formula's backlog")
    state_states["docker_container.running"].assert_not_called()
    state_salt["event.send"].assert_not_called()


def test_recreation_that_does_not_heal_fails_and_says_so(state_salt, state_states):
    state_salt["docker.inspect_container"].side_effect = [None, inspected("restarting")]
    ret = energy_state.healthy(FORMULA, "formula", RUN, timeout=0)
    assert ret["result"] is False
    assert "still unhealthy: the container is restarting" in ret["comment"]
    assert state_salt["event.send"].call_args.args[1]["healed"] is False


def test_failed_docker_container_running_fails_the_state(state_salt, state_states):
    state_salt["docker.inspect_container"].side_effect = Exception("No such container")
    state_states["docker_container.running"].return_value = {"result": False, "changes": {},
                                                              "comment": "image not found"}
    ret = energy_state.healthy(FORMULA, "formula", RUN)
    assert ret["result"] is False and ret["comment"].endswith("still unhealthy: image not found")
    assert state_salt["event.send"].call_args.args[1]["healed"] is False


def test_healthy_in_test_mode_only_says_what_it_would_do(state_opts, state_salt, state_states):
    state_opts["test"] = True
    state_salt["docker.inspect_container"].side_effect = Exception("No such container")
    ret = energy_state.healthy(FORMULA, "formula", RUN)
    assert ret["result"] is None
    assert ret["changes"] == {"recreate": {"reason": "the container is missing"}}
    assert ret["comment"] == f"would recreate formula container {FORMULA} because the container is missing"
    state_states["docker_container.running"].assert_not_called()
    state_salt["docker.rm"].assert_not_called()
    state_salt["event.send"].assert_not_called()


def test_healthy_leaves_a_container_in_maintenance_alone(state_salt, state_states):
    state_salt["energy.held"].return_value = "maintenance on formula since 2024-01-01 00:00:00 (tuning)"
    state_salt["docker.inspect_container"].side_effect = Exception("No such container")
    ret = energy_state.healthy(FORMULA, "formula", RUN)
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == (f"formula container {FORMULA} left alone: "
                              "maintenance on formula since 2024-01-01 00:00:00 (tuning)")
    state_salt["docker.inspect_container"].assert_not_called()
    state_states["docker_container.running"].assert_not_called()
    state_salt["docker.rm"].assert_not_called()
    state_salt["event.send"].assert_not_called()


# --------------------------------------------------------------------------- energy.events_engine (state)

MAIN_ENGINES = [{"custom": {"interval": 5}}]


@pytest.fixture
def no_restart():
    """No test may restart a salt-minion: the detached restart is replaced, and must not be reached."""
    with mock.patch.object(energy_state, "_restart_minion_later", side_effect=AssertionError("restart")) as later:
        yield later


def wanted_engine_file():
    return energy_state.core.healing.engine_content(MINION, MAIN_ENGINES)


def test_events_engine_writes_the_config_keeping_the_main_engines(engine_path, state_salt, no_restart):
    ret = energy_state.events_engine(str(engine_path), restart=False)
    assert engine_path.read_text() == wanted_engine_file()
    engines = yaml.safe_load(engine_path.read_text())["engines"]
    assert engines[0] == {"custom": {"interval": 5}} and "energy-docker-events" in engines[1]
    assert ret["changes"]["config"] == {"old": None, "new": str(engine_path)}
    assert ret["comment"].startswith(f"{engine_path} written; salt-minion needs a restart to start")
    assert ret["result"] is True
    no_restart.assert_not_called()


def test_events_engine_warns_naming_the_minion_when_it_may_not_restart(engine_path, state_salt, no_restart):
    engine_path.parent.mkdir()
    engine_path.write_text(wanted_engine_file())
    ret = energy_state.events_engine(str(engine_path), restart=False)
    assert ret["changes"] == {}
    assert ret["result"] is True
    assert len(ret["warnings"]) == 1
    assert ret["warnings"][0].startswith(f"restart salt-minion on {MINION} to start the docker_events engine")
    assert "energy:heal:events:restart_minion is false" in ret["warnings"][0]


def test_events_engine_without_a_way_to_restart_warns_too(engine_path, state_salt, no_restart):
    # no pidfile, no pid grain: this minion cannot be restarted by the formula
    ret = energy_state.events_engine(str(engine_path))
    assert engine_path.exists()
    assert "no systemd, minion_restart_command or daemon mode" in ret["warnings"][0]
    assert MINION in ret["warnings"][0]


def test_events_engine_restarts_the_minion_once_it_can(engine_path, state_salt):
    with mock.patch.object(energy_state, "_can_restart_minion", return_value="systemd"), \
            mock.patch.object(energy_state, "_restart_minion_later", return_value="systemd") as later:
        ret = energy_state.events_engine(str(engine_path))
        later.assert_called_once_with()
        assert ret["changes"]["minion"] == {"restart": "systemd", "to": "start the docker_events engine"}
        assert "warnings" not in ret
        later.return_value = None  # an earlier run scheduled it already
        ret = energy_state.events_engine(str(engine_path))
    assert "minion" not in ret["changes"]
    assert ret["comment"].endswith("(an earlier run scheduled it)")


def test_events_engine_in_test_mode_writes_nothing(engine_path, state_opts, state_salt, no_restart):
    state_opts["test"] = True
    ret = energy_state.events_engine(str(engine_path))
    assert not engine_path.exists()
    assert ret["result"] is None  # the engine is not loaded: a restart would be needed
    assert ret["changes"]["config"] == {"old": None, "new": str(engine_path)}
    assert ret["comment"].startswith(f"{engine_path} would be written; salt-minion needs a restart")


def test_events_engine_in_test_mode_with_the_engine_loaded(engine_path, state_opts, state_salt, no_restart):
    # no restart needed, but a file would be written: a pending change is result None in test mode
    state_opts["test"] = True
    state_salt["energy.engine_loaded"].return_value = True
    ret = energy_state.events_engine(str(engine_path))
    assert not engine_path.exists()
    assert ret["result"] is None
    assert ret["changes"] == {"config": {"old": None, "new": str(engine_path)}}
    assert ret["comment"] == f"{engine_path} would be written; the docker_events engine is running"


def test_events_engine_in_place_and_loaded_changes_nothing(engine_path, state_salt, no_restart):
    energy_state.events_engine(str(engine_path), restart=False)
    written = engine_path.stat().st_mtime_ns
    state_salt["energy.engine_loaded"].return_value = True
    ret = energy_state.events_engine(str(engine_path))
    assert ret["changes"] == {}
    assert ret["result"] is True
    assert "warnings" not in ret
    assert ret["comment"].endswith("the docker_events engine is running")
    assert engine_path.stat().st_mtime_ns == written


def test_events_engine_updates_an_old_config_and_needs_a_reload(engine_path, state_salt, no_restart):
    engine_path.parent.mkdir()
    engine_path.write_text("engines: []\n")
    state_salt["energy.engine_loaded"].return_value = True
    ret = energy_state.events_engine(str(engine_path), restart=False)
    assert engine_path.read_text() == wanted_engine_file()
    assert ret["changes"]["config"] == {"old": "other content", "new": str(engine_path)}
    assert ret["warnings"][0].startswith(f"restart salt-minion on {MINION} to reload the docker_events engine")


def test_events_engine_disabled_removes_the_config(engine_path, state_salt, no_restart):
    energy_state.events_engine(str(engine_path), restart=False)
    assert engine_path.exists()
    ret = energy_state.events_engine(str(engine_path), enabled=False)
    assert not engine_path.exists()
    assert ret["changes"] == {"config": {"old": str(engine_path), "new": None}}
    assert ret["comment"] == f"{engine_path} removed; the docker_events engine is off"
    assert ret["result"] is True
    # once removed, nothing left to do
    again = energy_state.events_engine(str(engine_path), enabled=False)
    assert again["changes"] == {} and again["comment"] == "the docker_events engine is off"


def test_events_engine_disabled_while_running_stops_with_the_next_restart(engine_path, state_salt, no_restart):
    engine_path.parent.mkdir()
    engine_path.write_text(wanted_engine_file())
    state_salt["energy.engine_loaded"].return_value = True
    ret = energy_state.events_engine(str(engine_path), enabled=False, restart=False)
    assert not engine_path.exists()
    assert "warnings" not in ret
    assert ret["comment"].endswith("the docker_events engine stops with the next salt-minion restart")


# --------------------------------------------------------------------------- energy.react_event (runner)


def docker_event(name=FORMULA, action="die", label=MINION):
    attributes = {"name": name, "image": "powerapi/smartwatts-formula:2.2.0"}
    if label is not None:
        attributes["energy.minion"] = label
    return {"Action": action, "Type": "container", "Actor": {"ID": "0" * 64, "Attributes": attributes}}


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
    client.cmd_async.assert_called_once_with([MINION], "energy.react", kwarg={"name": FORMULA, "action": "die"},
                                             tgt_type="list")
    assert ret == {"result": True,
                   "comment": f"energy.react {FORMULA} die sent to {MINION} (job 20240101000000000000)"}


def test_react_event_passes_destroy_on_and_reports_a_publish_failure(local_client):
    client = local_client.return_value.__enter__.return_value
    client.cmd_async.return_value = 0  # LocalClient's "could not publish"
    ret = energy_runner.react_event(minion=MINION, event=docker_event(name=SENSOR, action="destroy"))
    client.cmd_async.assert_called_once_with([MINION], "energy.react", kwarg={"name": SENSOR, "action": "destroy"},
                                             tgt_type="list")
    assert ret["result"] is False


# --------------------------------------------------------------------------- secrets


def test_no_secret_leaves_the_minion_in_a_return(engine_on):
    secret = "unit-test-secret"
    for name, value in (("plan", energy_mod.plan()), ("node", energy_mod.node()),
                        ("summary", energy_mod.summary()), ("config", energy_mod.config())):
        assert secret not in repr(value), name
    assert "***" in repr(energy_mod.config()) and "***" in repr(energy_mod.plan())
    # the formula's own SLS files get the real value, to give it to Grafana
    (grafana,) = [c for c in energy_mod.node(secrets=True)["containers"] if c["component"] == "grafana"]
    assert grafana["run"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == secret
