"""Faults: the Docker engine restarts under the stack, an InfluxDB volume fills up, the master
restarts in the middle of an orch, a minion dies in the middle of one. Each test breaks the running
deployment and checks what comes back, what is reported, and that nothing was half-removed.

Runs last (hence its name): it restarts salt-master, which test_reactor needs to do first, and the
Docker engine. A demo on the same engine sees its containers stop and come back with it (their
restart policy), as the test checks for its own."""

import pathlib
import subprocess
import time

import docker
import psutil

from energy_core import health as checks
from tests.integration.conftest import (EPYC, MINIONS, XEON_E5, XEON_GOLD, containers, failed_steps, one,
                                       pillar_changed, settled)
from tests.power import influx

ROOT = pathlib.Path(__file__).resolve().parents[2]


def stack(docker_engine):
    """{container name: id} of the test minions' containers."""
    return {c.name: c.id for c in containers(docker_engine)}


def nothing_removed(docker_engine, before):
    """Every container of ``before`` (``stack``) is still there, the same one (its id)."""
    after = stack(docker_engine)
    return {name: cid for name, cid in after.items() if name in before} == before


def running_names(docker_engine):
    return sorted(c.name for c in containers(docker_engine, all=False))


def orch_in_background(salt_run_cli):
    return subprocess.Popen(salt_run_cli.cmdline("state.orchestrate", "energy.orch"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process, seconds):
    try:
        return process.communicate(timeout=seconds)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0]


def all_answer(salt_cli, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        ret = salt_cli.run("test.ping", minion_tgt="test-*", _timeout=30)
        if isinstance(ret.data, dict) and set(ret.data) >= set(MINIONS) and all(ret.data.values()):
            return True
        time.sleep(3)
    return False


def wait_for_plan_check(event_listener, salt_master, minion, after, seconds=180):
    """The orch has passed its plan check on ``minion`` (its energy.check return is on the bus)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        for event in event_listener.get_events([(salt_master.id, f"salt/job/*/ret/{minion}")], after_time=after):
            if event.data.get("fun") == "energy.check":
                return True
        time.sleep(0.2)
    return False


def test_a_master_restarted_mid_orch_leaves_nothing_half_done_and_the_next_orch_finishes(
        deployed, salt_master, salt_run_cli, salt_cli, docker_engine, event_listener):
    planned = running_names(docker_engine)
    # give the orch work: the EPYC formula is gone
    (formula,) = containers(docker_engine, energy_component="formula", energy_cpu=EPYC)
    formula.remove(force=True)
    before = stack(docker_engine)
    start = time.time()
    orch = orch_in_background(salt_run_cli)
    try:
        assert wait_for_plan_check(event_listener, salt_master, "test-ctl", start), finish(orch, 5)
        salt_master.terminate()
    finally:
        output = finish(orch, 240)
        salt_master.start(start_timeout=120)
    assert orch.returncode != 0, output  # the orch lost its master: it cannot say it finished
    # nothing of what ran was removed: every container is the one it was, or one the orch made
    assert nothing_removed(docker_engine, before)
    assert all_answer(salt_cli), "the minions did not come back to the restarted master"
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode == 0, failed_steps(ret.data) if isinstance(ret.data, dict) else ret.stdout
    assert running_names(docker_engine) == planned  # the EPYC formula is back, nothing else changed


def kill_now(daemon):
    """SIGKILL a Salt daemon's whole process tree at once. ``terminate()`` stops it gracefully,
    which can take longer than an orch phase that has nothing to do: the next phase would reach
    it while it still answers."""
    parent = psutil.Process(daemon.pid)
    for proc in [parent, *parent.children(recursive=True)]:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def test_a_minion_that_dies_mid_orch_is_named_and_nothing_is_half_removed(
        deployed, salt_master, salt_minions, salt_run_cli, salt_cli, docker_engine, event_listener):
    planned = running_names(docker_engine)
    node_c = salt_minions["test-node-c"]  # runs a sensor only
    (sensor,) = containers(docker_engine, energy_component="sensor", energy_minion="test-node-c")
    sensor.remove(force=True)  # its phase has something to do when it dies
    before = stack(docker_engine)
    start = time.time()
    orch = orch_in_background(salt_run_cli)
    try:
        # it answered the orch's ping and its plan check, then it dies before the services phase
        assert wait_for_plan_check(event_listener, salt_master, "test-node-c", start), finish(orch, 5)
        kill_now(node_c)
        node_c.terminate()
        output = finish(orch, 400)
        assert orch.returncode != 0, output
        assert "test-node-c" in output  # named by the phase it did not answer
        # (its sensor may be there: a job the minion had begun can finish in the forked process)
        assert nothing_removed(docker_engine, before)
    finally:
        if not node_c.is_running():
            node_c.start(start_timeout=120)
    assert all_answer(salt_cli)
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode == 0, failed_steps(ret.data) if isinstance(ret.data, dict) else ret.stdout
    assert running_names(docker_engine) == planned


def points(info, until):
    series = influx(info["influxdb_url"], info["influxdb_database"],
                    f"SELECT count(power) FROM power_consumption WHERE time <= {int(until * 1000)}ms")
    return series[0]["values"][0][1] if series else 0


def restart_dockerd():
    pid = int(subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, check=True).stdout.split()[0])
    subprocess.run(["kill", "-TERM", str(pid)], check=True)
    deadline = time.time() + 120
    while pathlib.Path(f"/proc/{pid}").exists():
        assert time.time() < deadline, "dockerd did not stop"
        time.sleep(0.5)
    subprocess.run(["bash", str(ROOT / "scripts" / "engine.sh")], check=True)


def test_a_docker_engine_restart_brings_the_stack_back_on_its_volumes_without_losing_a_point(
        plan, docker_engine, event_listener, salt_master):
    info = plan["cpus"][XEON_GOLD]
    was_running = {c.name: c.id for c in containers(docker_engine, all=False)}
    until = time.time() - 10  # SmartWatts holds the newest ticks back a little
    stored = points(info, until)
    assert stored > 0
    restart_dockerd()
    client = docker.from_env()
    deadline = time.time() + 120
    while {c.name: c.id for c in containers(client, all=False)} != was_running and time.time() < deadline:
        time.sleep(1)
    # the same containers (same ids, so the same volumes) run again: Docker's restart policy
    assert {c.name: c.id for c in containers(client, all=False)} == was_running
    restarted = time.time()
    deadline = restarted + 120
    while time.time() < deadline:
        try:
            if points(info, until) == stored:
                break
        except OSError:
            pass
        time.sleep(2)
    assert points(info, until) == stored  # every point stored before the restart is still there
    fresh = f"SELECT count(power) FROM power_consumption WHERE time > {int(restarted * 1000)}ms"
    while not influx(info["influxdb_url"], info["influxdb_database"], fresh) and time.time() < deadline + 60:
        time.sleep(3)
    assert influx(info["influxdb_url"], info["influxdb_database"], fresh), "no power after the restart"
    # test-ctl's docker_events engine (armed by test_reactor) follows the new engine: Salt restarts
    # an engine whose process ended, and a container killed now is recreated by the reactor
    time.sleep(15)
    victim = one(client, "formula", XEON_GOLD)
    start = time.time()
    victim.kill()
    events = event_listener.wait_for_events([(salt_master.id, "energy/heal/formula")], after_time=start, timeout=90)
    assert events.found_all_events, "the engine's events did not resume after the Docker engine restart"
    assert next(iter(events)).data["data"]["healed"] is True


def test_a_full_influxdb_volume_is_reported_as_such_and_not_recreated_in_a_loop(
        plan, docker_engine, salt_cli, pillar_tree, pillar):
    info = plan["cpus"][XEON_E5]  # its InfluxDB runs on test-node-b, its sensor on test-node-c
    container = one(docker_engine, "influxdb", XEON_E5)
    volume = container.attrs["Mounts"][0]["Name"]
    container.remove(force=True)
    docker_engine.volumes.get(volume).remove()
    # the same volume, on a 64 MB tmpfs this test can fill without filling the machine's disk
    docker_engine.volumes.create(volume, driver="local",
                                 driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=64m"})
    try:
        ret = salt_cli.run("state.apply", "energy.influxdb", minion_tgt="test-node-b")
        assert ret.returncode == 0, ret.stdout
        settled(docker_engine)  # its SmartWatts, which lost its InfluxDB, is back before the next test
        full = one(docker_engine, "influxdb", XEON_E5)
        full.exec_run(["sh", "-c", "dd if=/dev/zero of=/var/lib/influxdb/fill bs=1M; sync"])
        sensor = one(docker_engine, "sensor", XEON_E5)
        # a sensor counts as stuck after 5 s without a new point here, so the check runs at once
        with pillar_changed(salt_cli, pillar_tree, pillar,
                            lambda energy: energy["heal"].update(max_age_seconds=5, grace_seconds=1)):
            # the premise: InfluxDB refuses a write (its WAL cannot grow). InfluxDB 1.x puts a point in
            # its in-memory cache before its WAL, so a refused point may still be read back: the
            # sensor's points can look fresh, and the sensor's check may then rightly find it healthy
            deadline, refused = time.time() + 60, None
            while time.time() < deadline and not refused:
                refused = checks.influx.refuses_points(info["influxdb_url"], info["influxdb_database"])
                time.sleep(0 if refused else 2)
            assert refused and "no space" in refused, f"InfluxDB still takes a write after its volume was filled: {refused}"
            for _ in range(2):  # two heal runs: no recreation, twice the same report
                ret = salt_cli.run("state.apply", "energy.heal", minion_tgt="test-node-b")
                (health,) = [r for sid, r in ret.data.items() if "health" in sid and full.name in sid]
                assert health["result"] is False and "is full" in health["comment"], health
                assert "left as it is" in health["comment"] and not health["changes"]
                ret = salt_cli.run("state.apply", "energy.heal", minion_tgt="test-node-c")
                (check,) = [r for sid, r in ret.data.items() if "health" in sid and sensor.name in sid]
                # never blamed for its InfluxDB: healthy while its points read back, else reported
                assert check["result"] is True or "does not store points" in check["comment"], check
                assert not check["changes"]
        assert one(docker_engine, "influxdb", XEON_E5).id == full.id
        assert one(docker_engine, "sensor", XEON_E5).id == sensor.id
    finally:
        one(docker_engine, "influxdb", XEON_E5).remove(force=True)
        docker_engine.volumes.get(volume).remove()
        ret = salt_cli.run("state.apply", "energy.influxdb", minion_tgt="test-node-b")
        assert ret.returncode == 0, ret.stdout
        settled(docker_engine)  # its SmartWatts, which lost its InfluxDB, is back before the next test
