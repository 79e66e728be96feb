"""Loader mocks shared by test_salt_modules.py and test_salt_states.py (pytest-salt-factories'
``configure_loader_modules``): the Salt-facing files (``energy.py`` of each kind and the
``energy_heal.py``/``energy_archive.py`` split from them), each imported under its own name, and the loader globals they get. Salt itself (the loader, the event bus,
Docker) is replaced by mocks; the pure core runs for real."""

import datetime
import importlib.util
import logging
from unittest import mock

import pytest

from energy_core import health as health_core
from tests.conftest import ROOT


def _import(kind, name="energy"):
    spec = importlib.util.spec_from_file_location(f"{name}_salt_{kind.strip('_')}", ROOT / kind / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.CORE_ERROR is None, module.CORE_ERROR
    return module


energy_mod = _import("_modules")
energy_state = _import("_states")
energy_runner = _import("_runners")
heal_mod = _import("_modules", "energy_heal")
heal_state = _import("_states", "energy_heal")
heal_runner = _import("_runners", "energy_heal")
archive_mod = _import("_modules", "energy_archive")
health_mod = _import("_modules", "energy_health")  # the healing pipeline, run for real under the state

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
    loggers = [logging.getLogger(m.__name__) for m in (energy_mod, energy_state, energy_runner, heal_mod, heal_state,
                                                   heal_runner, archive_mod, health_mod)]
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
    return {"energy": {"control": MINION, "grafana": {"admin_password": "unit-test-secret"},
                       "mongo": {"admin_password": "unit-mongo-admin", "sensor_password": "unit-mongo-sensor",
                                 "formula_password": "unit-mongo-formula"}}}


@pytest.fixture
def module_opts(conf_file, cachedir):
    return {"id": MINION, "conf_file": str(conf_file), "cachedir": str(cachedir), "test": False}


@pytest.fixture
def module_salt():
    return {
        "event.send": mock.MagicMock(return_value=True),
        "energy_health.check": mock.MagicMock(return_value={"status": "recreated", "result": True, "changes": {},
                                                            "comment": "recreated ..."}),
        # this minion's part of the plan, as energy_health.plan_part computes it when none is kept
        "energy_health.plan_part": mock.MagicMock(side_effect=lambda: health_core.kept(
            energy_mod.node(energy_mod.config(secrets=True), secrets=True), energy_mod.config(secrets=True)["heal"])),
        "cp.get_file_str": mock.MagicMock(return_value=DEFAULTS_TEXT),
        "mine.get": mock.MagicMock(side_effect=lambda tgt, fun, tgt_type=None: {MINION: dict(FACTS)}),
    }


@pytest.fixture
def state_opts(conf_file, cachedir):
    return {"id": MINION, "conf_file": str(conf_file), "cachedir": str(cachedir), "test": False}


STATE_SECRET = "a-mongo-password-in-the-env"


@pytest.fixture
def state_salt():
    return {
        "energy_heal.engine_loaded": mock.MagicMock(return_value=False),
        # energy_heal.healthy runs the real pipeline, whose Docker calls are the mocks of this dict
        "energy_health.check": lambda *args, **kwargs: health_mod.check(*args, **kwargs),
        "docker.inspect_volume": mock.MagicMock(return_value={}),
        "docker.logs": mock.MagicMock(return_value=""),
        "docker.ps": mock.MagicMock(return_value={}),
        "state.running": mock.MagicMock(return_value=[]),
        "docker.inspect_container": mock.MagicMock(return_value=inspected()),
        "docker.rm": mock.MagicMock(return_value=True),
        "docker.inspect_image": mock.MagicMock(return_value={"Id": "sha256:0"}),
        "event.send": mock.MagicMock(return_value=True),
        "energy.config": mock.MagicMock(return_value={"mongo": {"formula_password": STATE_SECRET}}),
    }


@pytest.fixture
def state_states():
    return {"docker_container.running": mock.MagicMock(return_value={"result": True, "changes": {}, "comment": ""}),
            "energy_network.present": mock.MagicMock(return_value={"result": True, "changes": {}, "comment": ""})}


@pytest.fixture
def runner_opts(conf_file, tmp_path):
    return {"conf_file": str(conf_file), "cachedir": str(tmp_path / "master-cache")}


@pytest.fixture
def configure_loader_modules(module_opts, module_salt, pillar, state_opts, state_salt, state_states, runner_opts):
    return {
        energy_mod: {"__opts__": module_opts, "__salt__": module_salt, "__pillar__": pillar, "__grains__": {},
                     "__context__": {}},
        energy_runner: {"__opts__": runner_opts, "__salt__": {}, "__context__": {}},
        **_split_modules(module_opts, module_salt, pillar, state_opts, state_salt, state_states, runner_opts),
    }


def _split_modules(module_opts, module_salt, pillar, state_opts, state_salt, state_states, runner_opts):
    """The loader globals of the files split from the ``energy`` ones (``energy_heal``, ``energy_archive``):
    the same opts and mocks; what they ask of ``energy`` through ``__salt__``/``__states__`` is its real
    function, and the states of one run share ``__context__`` as Salt's loader does."""
    module_salt.update({"energy.config": energy_mod.config, "energy.node": energy_mod.node,
                        "energy.plan": energy_mod.plan})
    state_states.setdefault("energy.container_running", energy_state.container_running)
    context = {}
    return {
        heal_mod: {"__opts__": module_opts, "__salt__": module_salt, "__pillar__": pillar, "__grains__": {},
                   "__context__": {}},
        archive_mod: {"__opts__": module_opts, "__salt__": module_salt, "__pillar__": pillar, "__grains__": {},
                      "__context__": {}},
        energy_state: {"__opts__": state_opts, "__salt__": state_salt, "__states__": state_states,
                       "__grains__": {}, "__context__": context},
        heal_state: {"__opts__": state_opts, "__salt__": state_salt, "__states__": state_states,
                     "__grains__": {}, "__context__": context},
        heal_runner: {"__opts__": runner_opts, "__salt__": {}, "__context__": {}},
        health_mod: {"__opts__": state_opts, "__salt__": state_salt, "__pillar__": pillar, "__context__": {}},
    }


@pytest.fixture
def engine_on(engine_path):
    """Event-driven healing is on on this minion: its engine file exists."""
    engine_path.parent.mkdir()
    engine_path.write_text("engines: []\n")
    return engine_path


RUN = {"image": "powerapi/smartwatts-formula:2.1.2", "network_mode": "host"}
