"""Event-driven recovery: the docker_events engine that energy.heal installs on a minion reports a
container of the stack dying; the master's reactor (the reaction energy.orch writes to
master.d, loaded when salt-master restarts) has that minion recreate
it at once, one recreation per failure, never for the temporary containers of a state run, and
never for a container in maintenance.

Runs after the other integration modules: once test-ctl runs the engine, what they break on
purpose there would be healed behind their back."""

import json
import pathlib
import time

import pytest
import yaml

from tests.integration.conftest import XEON_GOLD, one, settled, target_name



def engine_state(ret):
    (result,) = [r for sid, r in ret.data.items() if "energy-heal-engine-managed" in sid]
    return result


def react_returns(event_listener, salt_master, after, name=None):
    """The returns of energy_heal.react on test-ctl after ``after`` (for container ``name`` only: a
    container of an earlier test may die meanwhile, e.g. SmartWatts when its InfluxDB goes)."""
    return [e.data for e in event_listener.get_events([(salt_master.id, "salt/job/*/ret/test-ctl")],
                                                      after_time=after)
            if e.data.get("fun") == "energy_heal.react"
            and (name is None or any(isinstance(a, dict) and a.get("name") == name
                                     for a in e.data.get("fun_args") or []))]


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

    path = salt_cli.run("energy_heal.engine_file", minion_tgt="test-ctl").data
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
    assert salt_cli.run("energy_heal.engine_loaded", minion_tgt="test-ctl").data is True
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
    reacts = react_returns(event_listener, salt_master, start, victim.name)
    assert len(reacts) == 1  # the destroy comes within energy:heal:events:interval of the die: dropped


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
               if e.data.get("fun") == "energy_heal.react"]
    assert started == []


def test_maintenance_keeps_a_deliberate_stop(engine_running, salt_cli, docker_engine, event_listener,
                                             salt_master):
    victim = one(docker_engine, "formula", XEON_GOLD)
    ret = salt_cli.run("energy_heal.maintenance", "on", victim.name, "reason=moving the disk", minion_tgt="test-ctl")
    assert victim.name in ret.data, ret.stdout
    try:
        start = time.time()
        victim.stop(timeout=1)
        deadline = start + 60
        while not react_returns(event_listener, salt_master, start) and time.time() < deadline:
            time.sleep(1)
        (react,) = react_returns(event_listener, salt_master, start)
        assert react["return"]["status"] == "held"  # the one pipeline's words, as the state says them
        assert react["return"]["comment"].startswith(f"formula container {victim.name} left alone: maintenance on "
                                                     f"{victim.name}")
        assert "moving the disk" in react["return"]["comment"]

        # neither the stack's states nor the health checks (what the schedule applies) start it
        ret = salt_cli.run("state.apply", "energy,energy.heal", minion_tgt="test-ctl")
        assert ret.returncode == 0, ret.stdout
        comments = " ".join(r["comment"] for r in ret.data.values())
        assert f"formula container {victim.name} left alone: maintenance on {victim.name}" in comments
        victim.reload()
        assert victim.status == "exited"
        assert not event_listener.get_events([(salt_master.id, "energy/heal/formula")], after_time=start)
        status = salt_cli.run("energy_heal.maintenance", minion_tgt="test-ctl").data
        assert status[victim.name]["reason"] == "moving the disk"
    finally:  # also when an assertion above failed: the next tests need the formula back
        off = salt_cli.run("energy_heal.maintenance", "off", victim.name, minion_tgt="test-ctl")
        healed = salt_cli.run("state.apply", "energy.heal", minion_tgt="test-ctl")
    assert off.data == {}
    assert healed.returncode == 0, healed.stdout
    assert wait_running(docker_engine, victim.name, 5)


def test_maintenance_rejects_an_unknown_target(engine_running, salt_cli):
    ret = salt_cli.run("energy_heal.maintenance", "on", "nginx", minion_tgt="test-ctl")
    assert "bad target 'nginx'" in ret.stdout and "Fix:" in ret.stdout
    assert salt_cli.run("energy_heal.maintenance", minion_tgt="test-ctl").data == {}


def test_a_removed_container_is_named_from_what_the_names_engine_recorded_at_its_start(
        engine_running, salt_cli, docker_engine, images_built):
    """energy.report names a target after its container also once the container is gone: the
    energy_names engine (installed with the docker_events engine) recorded its name and compose
    labels when it started, on the minion that ran it."""
    container = docker_engine.containers.run(
        images_built["python"], ["sleep", "infinity"], detach=True, name="energy-test-names-brief",
        network_mode="none", labels={"com.docker.compose.project": "brief", "com.docker.compose.service": "work"})
    try:
        target = target_name(docker_engine, container)
        time.sleep(3)  # the engine reads the start event
    finally:
        container.remove(force=True)
    unknown = "/docker/" + "0" * 64
    found = salt_cli.run("energy_report.names", json.dumps([target, unknown]), minion_tgt="test-ctl").data
    assert found[target]["name"] == "energy-test-names-brief", found  # from the record: Docker has it no more
    assert (found[target]["project"], found[target]["service"]) == ("brief", "work")
    assert found[unknown] is None  # never started here: left unresolved


# --------------------------------------------------------------------------- forged events


def forge(salt_cli, sender, events):
    """``sender`` sends ``events`` (``(tag, data)``) in Salt's batch form of _minion_event, where
    the data, the minion id in it included, is whatever the sender writes."""
    preload = {"events": [{"tag": tag, "data": data} for tag, data in events]}
    ret = salt_cli.run("event.fire_master", "{}", "energy/forged", f"preload={json.dumps(preload)}",
                       minion_tgt=sender)
    assert ret.returncode == 0 and ret.data is True, ret.stdout


def stamped(victim, name, action="die", label=None):
    """An energy/docker event as the victim's engine would send it, for its container ``name``."""
    return (f"energy/docker/{action}", {"id": victim, "data": {
        "Action": action, "Type": "container",
        "Actor": {"ID": "f" * 64, "Attributes": {"name": name, "energy.minion": label or victim}}}})


def wait_reactions(event_listener, salt_master, after, count, timeout=180):
    """The returns of the reactor's energy.react_event runs after ``after``, once ``count`` are in."""
    deadline = time.time() + timeout
    while True:
        found = [e.data for e in event_listener.get_events([(salt_master.id, "salt/run/*/ret")], after_time=after)
                 if e.data.get("fun") == "runner.energy.react_event"]
        if len(found) >= count or time.time() > deadline:
            return found
        time.sleep(2)


def jobs_started(event_listener, salt_master, after):
    return [e.data for e in event_listener.get_events([(salt_master.id, "salt/job/*/new")], after_time=after)
            if e.data.get("fun") != "event.fire_master"]


@pytest.fixture
def quiet_stack(engine_running, docker_engine):
    """The stack settled, and more than one energy:heal:events:interval (10 s) since any reaction."""
    before = settled(docker_engine, quiet=5)
    time.sleep(11)
    return before


def test_a_batch_forged_event_runs_one_bounded_job_on_the_victim(quiet_stack, salt_cli, docker_engine,
                                                                 event_listener, salt_master):
    victim = one(docker_engine, "formula", XEON_GOLD)
    assert victim.labels["energy.minion"] == "test-ctl"
    start = time.time()
    forge(salt_cli, "test-node-a", [stamped("test-ctl", victim.name)])
    (reaction,) = wait_reactions(event_listener, salt_master, start, 1)
    assert reaction["return"]["comment"].startswith(f"energy_heal.react {victim.name} die sent to test-ctl")
    deadline = time.time() + 60
    while not react_returns(event_listener, salt_master, start, victim.name) and time.time() < deadline:
        time.sleep(1)
    (react,) = react_returns(event_listener, salt_master, start, victim.name)
    # the victim looked at the container before anything else: Docker runs it, nothing to do
    assert react["return"]["comment"] == "still running: nothing to recreate"
    assert [j["fun"] for j in jobs_started(event_listener, salt_master, start)] == ["energy_heal.react"]
    assert settled(docker_engine, quiet=5) == quiet_stack
    assert not event_listener.get_events([(salt_master.id, "energy/heal/*")], after_time=start)


def test_a_flood_of_forged_events_is_bounded_and_nothing_else_runs(quiet_stack, salt_cli, docker_engine,
                                                                   event_listener, salt_master):
    victim = one(docker_engine, "formula", XEON_GOLD)
    sensor = "energy-test-ctl-sensor"
    events = ([stamped("test-ctl", victim.name, action) for action in ("die", "destroy")] * 50
              + [stamped("test-ctl", sensor)] * 40
              # well-formed, but not what the master's plan places there
              + [stamped("test-ctl", "energy-test-ctl-formula-made_up")] * 30
              + [stamped("test-node-b", "energy-test-node-b-grafana")] * 20
              # labelled for another minion: refused by shape
              + [stamped("test-node-b", victim.name, label="test-node-b")] * 10)
    assert len(events) == 200
    start = time.time()
    forge(salt_cli, "test-node-a", events)
    reactions = wait_reactions(event_listener, salt_master, start, len(events))
    assert len(reactions) == 200
    sent = [r["return"]["comment"] for r in reactions if not r["return"]["comment"].startswith("dropped: ")]
    # one reaction per planned container within the interval: the formula and the sensor
    assert sorted(c.split(" ")[1] for c in sent) == sorted([victim.name, sensor]), sent
    refused = [r["return"] for r in reactions if "plan computed on the master" in r["return"]["comment"]]
    assert len(refused) == 50
    time.sleep(10)
    started = jobs_started(event_listener, salt_master, start)
    assert sorted((j["fun"], tuple(j["minions"]), j["arg"][0]["name"]) for j in started) == sorted(
        [("energy_heal.react", ("test-ctl",), victim.name), ("energy_heal.react", ("test-ctl",), sensor)])
    assert {r["return"]["comment"] for r in react_returns(event_listener, salt_master, start)} == {
        "still running: nothing to recreate"}
    assert settled(docker_engine, quiet=5) == quiet_stack  # no container recreated
    assert not event_listener.get_events([(salt_master.id, "energy/heal/*")], after_time=start)
