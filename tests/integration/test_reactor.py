"""Event-driven recovery: the docker_events engine that energy.heal installs on a minion reports a
container of the stack dying; the master's reactor (the reaction energy.orch writes to
master.d, loaded when salt-master restarts) has that minion recreate
it at once, one recreation per failure, never for the temporary containers of a state run, and
never for a container in maintenance.

Runs after the other integration modules: once test-ctl runs the engine, what they break on
purpose there would be healed behind their back."""

import pathlib
import time

import pytest
import yaml

from tests.integration.conftest import XEON_GOLD, one



def engine_state(ret):
    (result,) = [r for sid, r in ret.data.items() if "energy-heal-engine-managed" in sid]
    return result


def react_returns(event_listener, salt_master, after):
    return [e.data for e in event_listener.get_events([(salt_master.id, "salt/job/*/ret/test-ctl")],
                                                      after_time=after)
            if e.data.get("fun") == "energy.react"]


def wait_running(docker_engine, name, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if docker_engine.containers.list(filters={"name": f"^{name}$", "status": "running"}, ignore_removed=True):
            return True
        time.sleep(0.5)
    return False


def wait_answering(salt_cli, minions, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        answered = salt_cli.run("--timeout=10", "test.ping", minion_tgt="test-*").data or {}
        if isinstance(answered, dict) and all(answered.get(m) is True for m in minions):
            return True
        time.sleep(2)
    return False


@pytest.fixture(scope="module")
def reactor_loaded(deployed, salt_master, salt_minions, salt_cli, salt_run_cli):
    """The orch wrote master.d/energy-reactor.conf; this master started without it (and without
    any reactor), and runs under the test harness, so the pillar has restart_master false: the
    runner says a restart is needed, and the restart loads the reaction."""
    config = pathlib.Path(salt_master.config_dir) / "master.d" / "energy-reactor.conf"
    ret = salt_run_cli.run("energy.reactor")
    assert ret.data["running"] is False and ret.data["loaded"] is False, ret.data
    assert ret.data["restart"] is None and ret.data["config"] is None  # the orch wrote it already
    assert ret.data["comment"].startswith(f"restart salt-master to load {config}"), ret.data
    assert ret.data["warnings"] == [ret.data["comment"]]

    salt_master.terminate()
    salt_master.start(start_timeout=120)
    assert wait_answering(salt_cli, salt_minions)
    ret = salt_run_cli.run("energy.reactor")
    assert ret.data["running"] is True and ret.data["loaded"] is True, ret.data
    assert ret.data["restart"] is None and "warnings" not in ret.data
    return ret.data


@pytest.fixture(scope="module")
def engine_running(reactor_loaded, salt_minions, salt_cli):
    """The orch installed the engine config; a restart of test-ctl starts it (these minions run
    under the test harness, so the pillar has energy:heal:events:restart_minion false)."""
    ret = salt_cli.run("state.apply", "energy.heal", minion_tgt="test-ctl")
    assert ret.returncode == 0, ret.stdout
    before = engine_state(ret)
    assert "needs a restart to start the docker_events engine" in before["comment"]
    assert "restart salt-minion on test-ctl" in " ".join(before.get("warnings", []))

    path = salt_cli.run("energy.engine_file", minion_tgt="test-ctl").data
    with open(path, encoding="utf-8") as handle:
        engines = yaml.safe_load(handle)["engines"]
    names = [e if isinstance(e, str) else next(iter(e)) for e in engines]
    assert "pytest" in names  # the main config's engines are kept (Salt would replace the list)
    ours = next(e for e in engines if isinstance(e, dict) and "energy-docker-events" in e)["energy-docker-events"]
    assert ours["engine_module"] == "docker_events"
    assert ours["filters"]["label"] == ["energy.minion=test-ctl"]

    minion = salt_minions["test-ctl"]
    minion.terminate()
    minion.start(start_timeout=120)
    assert wait_answering(salt_cli, ["test-ctl"], 60)
    assert salt_cli.run("energy.engine_loaded", minion_tgt="test-ctl").data is True
    ret = salt_cli.run("state.apply", "energy.heal", minion_tgt="test-ctl")
    assert ret.returncode == 0, ret.stdout
    after = engine_state(ret)
    assert after["comment"].endswith("the docker_events engine is running") and not after["changes"]
    time.sleep(3)  # the engine subscribes to the Docker events
    return minion


def test_the_master_d_file_keeps_the_main_configs_reactions(reactor_loaded, salt_master):
    # Salt replaces a top-level key of the main config with a master.d file's: the file carries
    # the main config's reactions over (none here) and adds the formula's
    config = pathlib.Path(reactor_loaded["file"])
    assert config.parent == pathlib.Path(salt_master.config_dir) / "master.d"
    with config.open(encoding="utf-8") as handle:
        assert yaml.safe_load(handle)["reactor"] == [{"energy/docker/*": ["salt://energy/reactor/heal.sls"]}]


def test_a_killed_formula_is_recreated_by_the_reactor(engine_running, docker_engine, event_listener, salt_master):
    victim = one(docker_engine, "formula", XEON_GOLD)
    start = time.time()
    victim.kill()
    events = event_listener.wait_for_events([(salt_master.id, "energy/docker/die"),
                                             (salt_master.id, "energy/heal/formula")],
                                            after_time=start, timeout=60)
    assert events.found_all_events, events.missed
    heal = next(e for e in events if e.tag == "energy/heal/formula").data["data"]
    assert heal["container"] == victim.name and heal["minion"] == "test-ctl"
    assert heal["trigger"] == "docker die event" and heal["healed"] is True
    assert wait_running(docker_engine, victim.name, 5)


def test_rm_f_sends_die_and_destroy_but_recreates_once(engine_running, docker_engine, event_listener, salt_master):
    victim = one(docker_engine, "influxdb", XEON_GOLD)
    start = time.time()
    victim.remove(force=True)
    events = event_listener.wait_for_events([(salt_master.id, "energy/docker/die"),
                                             (salt_master.id, "energy/docker/destroy"),
                                             (salt_master.id, "energy/heal/influxdb")],
                                            after_time=start, timeout=60)
    assert events.found_all_events, events.missed
    assert wait_running(docker_engine, victim.name, 30)
    time.sleep(15)  # let every job the two events started end
    heals = event_listener.get_events([(salt_master.id, "energy/heal/influxdb")], after_time=start)
    assert len(heals) == 1, [h.data for h in heals]
    reacts = react_returns(event_listener, salt_master, start)
    assert len(reacts) >= 2  # one job per Docker event, one recreation


def test_state_runs_trigger_no_reaction(engine_running, salt_cli, event_listener, salt_master):
    # a state run on a stack that has not changed leaves every container as it is: each one runs
    # its image with its energy.config digest, so docker_container.running's comparison (which
    # makes and removes a temporary container with the stack's labels) does not even run. No
    # container comes or goes, and the reactor has nothing to act on. (A temporary container's
    # destroy event is dropped by name: tests/functional/test_reaction.py.)
    time.sleep(10)  # the jobs of earlier tests are over
    start = time.time()
    ret = salt_cli.run("state.apply", "energy.formula", minion_tgt="test-ctl")
    assert ret.returncode == 0, ret.stdout
    running_states = [r for sid, r in ret.data.items() if "_|-container_running" in sid]
    assert len(running_states) == 3 and all(r["changes"] == {} for r in running_states)
    assert all("same energy.config digest" in r["comment"] for r in running_states)
    time.sleep(10)
    seen = event_listener.get_events([(salt_master.id, "energy/docker/destroy")], after_time=start)
    assert [e.data["data"]["Actor"]["Attributes"]["name"] for e in seen] == []
    started = [e for e in event_listener.get_events([(salt_master.id, "salt/job/*/new")], after_time=start)
               if e.data.get("fun") == "energy.react"]
    assert started == []


def test_maintenance_keeps_a_deliberate_stop(engine_running, salt_cli, docker_engine, event_listener,
                                             salt_master):
    victim = one(docker_engine, "formula", XEON_GOLD)
    ret = salt_cli.run("energy.maintenance", "on", victim.name, "reason=moving the disk", minion_tgt="test-ctl")
    assert victim.name in ret.data, ret.stdout
    try:
        start = time.time()
        victim.stop(timeout=1)
        deadline = start + 60
        while not react_returns(event_listener, salt_master, start) and time.time() < deadline:
            time.sleep(1)
        (react,) = react_returns(event_listener, salt_master, start)
        assert react["return"]["comment"].startswith(f"left alone: maintenance on {victim.name}")
        assert "moving the disk" in react["return"]["comment"]

        # neither the stack's states nor the health checks (what the schedule applies) start it
        ret = salt_cli.run("state.apply", "energy,energy.heal", minion_tgt="test-ctl")
        assert ret.returncode == 0, ret.stdout
        comments = " ".join(r["comment"] for r in ret.data.values())
        assert f"formula container {victim.name} left alone: maintenance on {victim.name}" in comments
        victim.reload()
        assert victim.status == "exited"
        assert not event_listener.get_events([(salt_master.id, "energy/heal/formula")], after_time=start)
        status = salt_cli.run("energy.maintenance", minion_tgt="test-ctl").data
        assert status[victim.name]["reason"] == "moving the disk"
    finally:
        ret = salt_cli.run("energy.maintenance", "off", victim.name, minion_tgt="test-ctl")
    assert ret.data == {}
    ret = salt_cli.run("state.apply", "energy.heal", minion_tgt="test-ctl")
    assert ret.returncode == 0, ret.stdout
    assert wait_running(docker_engine, victim.name, 5)


def test_maintenance_rejects_an_unknown_target(engine_running, salt_cli):
    ret = salt_cli.run("energy.maintenance", "on", "nginx", minion_tgt="test-ctl")
    assert "bad target 'nginx'" in ret.stdout and "Fix:" in ret.stdout
    assert salt_cli.run("energy.maintenance", minion_tgt="test-ctl").data == {}
