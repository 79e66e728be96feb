"""The master's reaction to energy/docker/* with forged events: a minion can send any event
(``salt-call event.send energy/docker/die '{...}'``), so nothing of it may become YAML, Jinja or a
state ID. The reaction (energy/reactor/heal.sls, rendered by Salt's py renderer as the reactor
does) always gives one fixed runner chunk with the event as data; the runner it calls
(energy.react_event) then runs nothing but energy_heal.react on the sending minion, for a container name
of that minion's own, that the plan computed on the master places there (the plan is faked here:
``tests/integration/test_reactor.py`` has the real one), at most once per interval."""

import importlib.util
import logging
from unittest import mock

import pytest
import salt.utils.templates

from tests.conftest import ROOT

REACTION = ROOT / "energy" / "reactor" / "heal.sls"

spec = importlib.util.spec_from_file_location("energy_runner_for_reaction", ROOT / "_runners" / "energy.py")
runner = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runner)


def render(minion, docker_event):
    """The reaction as the reactor renders it (``#!py``: run() with ``data`` set)."""
    data = {"id": minion, "data": docker_event, "_stamp": "2026-11-26T00:00:00"}
    result = salt.utils.templates.py(str(REACTION), string=True, data=data, tag="energy/docker/die",
                                     salt={}, grains={}, pillar={}, opts={}, saltenv="base")
    assert result["result"] is True, result
    return result["data"]


PLANNED = ["energy-node-a-sensor", "energy-node-a-formula-intel_xeon_gold_6130",
           "energy-node-a-influxdb-amd_epyc_7452", "energy-node-a-grafana"]


@pytest.fixture(autouse=True)
def runner_logs(caplog):
    """The runner's log records, kept out of Salt's deferred stderr handler."""
    logger = logging.getLogger(runner.__name__)
    caplog.set_level(logging.INFO, logger=logger.name)
    logger.addHandler(caplog.handler)
    logger.propagate = False
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.propagate = True


@pytest.fixture(autouse=True)
def master(tmp_path, monkeypatch):
    """A fresh master cachedir per test, and what the last orch handed the minions: node-a runs PLANNED."""
    runner.__opts__ = {"conf_file": "/etc/salt/master", "cachedir": str(tmp_path)}
    monkeypatch.setattr(runner, "_kept", lambda: {"interval": 10, "containers": {"node-a": sorted(PLANNED)}})


def run_reaction(chunks):
    """What the reactor would run: the runner with the chunk's args, its LocalClient recorded."""
    ((state_id, body),) = chunks.items()
    ((function, args),) = body.items()
    assert (state_id, function) == ("energy-heal-react-runner", "runner.energy.react_event")
    kwargs = {k: v for item in args[0]["args"] for k, v in item.items()}
    client = mock.MagicMock()
    client.cmd_async.return_value = "20261126000000000000"
    local = mock.MagicMock()
    local.return_value.__enter__.return_value = client
    with mock.patch("salt.client.get_local_client", local):
        ret = runner.react_event(**kwargs)
    return ret, client.cmd_async.call_args_list


def event(name, minion, action="die", label=None):
    return {"Action": action, "Type": "container",
            "Actor": {"ID": "f" * 64, "Attributes": {"name": name, "energy.minion": minion if label is None else label}}}


FORGED = {
    "newline-and-yaml": event("energy-node-a-sensor\nevil:\n  local.cmd.run:\n    - tgt: '*'\n    - arg: [id]", "node-a"),
    "quotes": event("energy-node-a-sensor'\"; rm -rf /", "node-a"),
    "jinja": event("energy-node-a-{{ salt['cmd.run']('id') }}", "node-a"),
    "jinja-statement": event("energy-node-a-sensor{% for x in range(9) %}x{% endfor %}", "node-a"),
    "another-minions-container": event("energy-node-b-sensor", "node-a"),
    "another-minions-label": event("energy-node-a-sensor", "node-a", label="node-b"),
    "not-a-stack-name": event("nginx", "node-a"),
    "temporary-container": event("brave_turing", "node-a"),
    "unknown-component": event("energy-node-a-nginx", "node-a"),
    "huge-name": event("energy-node-a-sensor-" + "x" * 100_000, "node-a"),
    "not-a-death": event("energy-node-a-sensor", "node-a", action="exec_start: sh -c id"),
    "no-actor": {"Action": "die"},
    "not-a-mapping": "energy-node-a-sensor",
    "a-list": ["energy-node-a-sensor"],
}


@pytest.mark.parametrize("docker_event", FORGED.values(), ids=FORGED.keys())
def test_a_forged_event_renders_the_same_fixed_chunk_and_runs_nothing(docker_event):
    chunks = render("node-a", docker_event)
    # one fixed state id and function; the event is carried as data, untouched
    assert list(chunks) == ["energy-heal-react-runner"]
    assert chunks["energy-heal-react-runner"]["runner.energy.react_event"][0]["args"][1]["event"] is docker_event
    ret, calls = run_reaction(chunks)
    assert calls == [], ret
    assert ret["result"] is True and ret["comment"].startswith("dropped: ")


@pytest.mark.parametrize("minion", ["node-a\n- tgt: '*'", "*", "", None])
def test_a_forged_minion_id_runs_nothing(minion):
    ret, calls = run_reaction(render(minion, event("energy-node-a-sensor", "node-a")))
    assert calls == [] and ret["comment"].startswith("dropped: ")


@pytest.mark.parametrize("name", PLANNED)
@pytest.mark.parametrize("action", ["die", "destroy"])
def test_a_real_death_runs_energy_react_on_the_sending_minion_only(name, action):
    ret, calls = run_reaction(render("node-a", event(name, "node-a", action)))
    assert calls == [mock.call(["node-a"], "energy_heal.react", kwarg={"name": name, "action": action}, tgt_type="list")]
    assert ret["result"] is True
