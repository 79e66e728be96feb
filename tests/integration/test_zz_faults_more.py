"""More faults, on the running test stack: two orchs at once and an orch during a clean; a corrupted
maintenance file; an image missing during a heal; a full MongoDB volume; a sensor whose clock is
90 s off the checker's; a container dying while the master is down.

Runs after test_zz_faults.py and before test_zz_strategies.py (which moves the stack to other
strategies): its last test stops salt-master and starts it again, and leaves it running. Where
test_reactor.py armed test-ctl's docker_events engine, what a test breaks on purpose on test-ctl
is held by a maintenance window while the test swaps it, so that the reactor does not race it."""

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import time

import docker
from energy_core import health
from tests.integration.conftest import XEON_E5, XEON_GOLD, containers, failed_steps, one, pillar_changed, settled

LOCK_STEP = "salt_|-energy-orch-lock-present-runner_|-energy_lock.take_|-runner"


def stack(docker_engine):
    return {c.name: c.id for c in containers(docker_engine)}


def in_background(salt_run_cli, sls):
    return subprocess.Popen(salt_run_cli.cmdline("state.orchestrate", sls), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for(predicate, seconds, interval=1.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(interval)
    return predicate()


def lock_path(salt_master):
    return pathlib.Path(salt_master.config["cachedir"]) / "energy" / "orch.lock"


def steps_run(orch_ret):
    """The steps of an orchestrate return that ran (failhard leaves the others out or unrun)."""
    data = orch_ret.get("data", orch_ret)
    return {sid for steps in data.values() if isinstance(steps, dict)
            for sid, step in steps.items()
            if isinstance(step, dict) and step.get("result") is not None and "failhard" not in str(step.get("comment"))}


@contextlib.contextmanager
def held(salt_cli, minion, name):
    salt_cli.run("energy_heal.maintenance", "on", name, "reason=swapping its volume", minion_tgt=minion)
    try:
        yield
    finally:
        salt_cli.run("energy_heal.maintenance", "off", name, minion_tgt=minion)


def heal_everywhere(salt_cli, docker_engine):
    """What a broken database took down with it (its formula, its sensor) is back: the light check
    on every test minion (the reactor of test_reactor may not run), until the stack settles."""
    for _ in range(3):
        salt_cli.run("energy_heal.heal_check", minion_tgt="test-*")
        try:
            return settled(docker_engine, timeout=60)
        except AssertionError:
            continue
    return settled(docker_engine)


def refused(process, holder):
    """The orch run by ``process`` was refused by the lock held by ``holder``, and ran nothing else."""
    output = process.communicate(timeout=300)[0]
    assert process.returncode != 0, output
    assert "refused, nothing was touched" in output and f"jid {holder['jid']}" in output, output
    assert "salt-run energy_lock.release force=True" in output
    with contextlib.suppress(ValueError):  # salt-run's JSON output, when the command line asked for it
        assert steps_run(json.loads(output)) == {LOCK_STEP}, output


def test_a_second_orch_or_a_clean_during_an_orch_is_refused_before_any_minion_is_touched(
        deployed, salt_master, salt_run_cli, salt_cli, docker_engine):
    before = stack(docker_engine)
    first = in_background(salt_run_cli, "energy.orch")
    try:
        assert wait_for(lambda: lock_path(salt_master).exists(), 180, interval=0.2), "the first orch took no lock"
        holder = json.loads(lock_path(salt_master).read_text())
        assert holder["what"] == "energy.orch"
        # a short state run on test-node-c that the first orch's next state step (queue: True)
        # waits for: it holds the lock a little longer than its own work would
        salt_cli.run("state.single", "cmd.run", "name=sleep 20", "--async", minion_tgt="test-node-c")
        second, clean = in_background(salt_run_cli, "energy.orch"), in_background(salt_run_cli, "energy.clean_orch")
        status = salt_run_cli.run("energy_lock.status").data
        assert status["held"] is True and status["running"] is True, status
        refused(second, holder)
        refused(clean, holder)
        output = first.communicate(timeout=500)[0]
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, output  # the refused ones did not disturb it
    assert not lock_path(salt_master).exists()  # its last step gave the lock back
    assert stack(docker_engine) == before  # nothing was removed or recreated: not by the clean either


def test_a_lock_left_by_an_orch_that_died_is_taken_over(deployed, salt_master, salt_run_cli):
    dead = {"jid": "20200101000000000000", "pid": 999999, "what": "energy.clean_orch", "since": 1577836800.0}
    lock_path(salt_master).parent.mkdir(parents=True, exist_ok=True)
    lock_path(salt_master).write_text(json.dumps(dead))
    assert salt_run_cli.run("energy_lock.status").data["running"] is False
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode == 0, failed_steps(ret.data) if isinstance(ret.data, dict) else ret.stdout
    assert "jid 20200101000000000000" in ret.stdout and "no longer runs on this master" in ret.stdout
    assert not lock_path(salt_master).exists()


# --------------------------------------------------------------------------- a corrupted maintenance file


def test_a_corrupted_maintenance_file_holds_everything_names_its_path_and_off_all_resets_it(
        deployed, salt_minions, salt_cli, docker_engine):
    sensor = one(docker_engine, "sensor", XEON_E5)
    minion = sensor.labels["energy.minion"]
    path = pathlib.Path(salt_minions[minion].config["cachedir"]) / "energy" / "maintenance.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"sensor": {"since": 17')  # cut short: a full disk, an editor, a crash
    try:
        status = salt_cli.run("energy_heal.maintenance", minion_tgt=minion)
        assert str(path) in status.data["all"]["unreadable"], status.stdout
        on = salt_cli.run("energy_heal.maintenance", "on", "formula", minion_tgt=minion)
        assert str(path) in on.stdout and "energy_heal.maintenance off all" in on.stdout, on.stdout
        assert path.read_text() == '{"sensor": {"since": 17'  # a refused switch writes nothing
        sensor.kill()
        check = salt_cli.run("energy_heal.heal_check", minion_tgt=minion)
        assert sensor.name in check.data["held"] and not check.data["recreated"], check.stdout
        ret = salt_cli.run("state.apply", "energy.heal", minion_tgt=minion)
        (state,) = [r for sid, r in ret.data.items() if "health" in sid and sensor.name in sid]
        assert "left alone" in state["comment"] and str(path) in state["comment"] and not state["changes"]
        sensor.reload()
        assert sensor.status == "exited"  # the operator's hold may have been on it: left as it is
        assert salt_cli.run("energy_heal.maintenance", "off", "all", minion_tgt=minion).data == {}
        assert (path.parent / "maintenance.json.corrupt").read_text() == '{"sensor": {"since": 17'
        check = salt_cli.run("energy_heal.heal_check", minion_tgt=minion)
        assert list(check.data["recreated"]) == [sensor.name], check.stdout
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path.parent / "maintenance.json.corrupt")
        salt_cli.run("energy_heal.maintenance", "off", "all", minion_tgt=minion)
        salt_cli.run("energy_heal.heal_check", minion_tgt=minion)
    assert one(docker_engine, "sensor", XEON_E5).status == "running"


# --------------------------------------------------------------------------- an image missing during a heal


def test_an_image_missing_during_a_heal_is_named_and_the_dead_container_and_its_data_are_kept(
        deployed, salt_cli, docker_engine):
    mongo = one(docker_engine, "mongo", XEON_E5)
    minion, image = mongo.labels["energy.minion"], mongo.attrs["Config"]["Image"]
    image_id = mongo.attrs["Image"]
    volume = next(m["Name"] for m in mongo.attrs["Mounts"] if m["Destination"] == "/data/db")
    docker_engine.api.remove_image(image, force=True)  # untags it; the containers keep their layers
    try:
        mongo.kill()
        repository, _, tag = image.rpartition(":")
        for _ in range(2):  # each heal says the same, and recreates nothing
            ret = salt_cli.run("state.apply", "energy.heal", minion_tgt=minion)
            (state,) = [r for sid, r in ret.data.items() if "health" in sid and mongo.name in sid]
            assert state["result"] is False and not state["changes"], state
            assert f"its image {repository} (tag {tag}) is not on {minion}" in state["comment"]
            assert f"docker pull {image}" in state["comment"] and "left as they are" in state["comment"]
            check = salt_cli.run("energy_heal.heal_check", minion_tgt=minion)
            assert "is not on" in check.data["left"].get(mongo.name, ""), check.stdout
            assert mongo.name not in check.data["recreated"], check.stdout
        assert one(docker_engine, "mongo", XEON_E5).id == mongo.id  # the dead container is kept
        assert docker_engine.volumes.get(volume)  # and so is its data
    finally:
        docker_engine.api.tag(image_id, repository, tag)
    check = salt_cli.run("energy_heal.heal_check", minion_tgt=minion)  # the image is back: healed
    assert "recreated mongo container" in check.data["recreated"][mongo.name], check.stdout
    back = one(docker_engine, "mongo", XEON_E5)
    assert back.status == "running" and back.id != mongo.id
    assert next(m["Name"] for m in back.attrs["Mounts"] if m["Destination"] == "/data/db") == volume
    heal_everywhere(salt_cli, docker_engine)


# --------------------------------------------------------------------------- a full MongoDB volume


def test_a_full_mongodb_volume_is_reported_with_the_fix_and_not_recreated_in_a_loop(deployed, salt_cli, docker_engine):
    mongo = one(docker_engine, "mongo", XEON_E5)
    minion = mongo.labels["energy.minion"]
    volume = next(m["Name"] for m in mongo.attrs["Mounts"] if m["Destination"] == "/data/db")
    with held(salt_cli, minion, mongo.name):  # the reactor, where it runs, must not bring it back meanwhile
        mongo.remove(force=True)
        docker_engine.volumes.get(volume).remove()
        # the same volume, on a 64 MB tmpfs this test can fill without filling the machine's disk
        docker_engine.volumes.create(volume, driver="local", driver_opts={"type": "tmpfs", "device": "tmpfs",
                                                                            "o": "size=64m"})
    try:
        ret = salt_cli.run("state.apply", "energy.mongo", minion_tgt=minion)
        assert ret.returncode == 0, ret.stdout
        heal_everywhere(salt_cli, docker_engine)
        full = one(docker_engine, "mongo", XEON_E5)
        full.exec_run(["sh", "-c", "dd if=/dev/zero of=/data/db/fill bs=1M; sync"])
        for _ in range(2):  # two heal runs: the same report, no recreation
            ret = salt_cli.run("state.apply", "energy.heal", minion_tgt=minion)
            (state,) = [r for sid, r in ret.data.items() if "health" in sid and full.name in sid]
            assert state["result"] is False and f"its volume {volume} is full" in state["comment"], state
            assert "let its formula consume the sensor reports" in state["comment"] and not state["changes"]
            check = salt_cli.run("energy_heal.heal_check", minion_tgt=minion)
            assert "is full" in check.data["left"][full.name] and full.name not in check.data["recreated"]
        assert one(docker_engine, "mongo", XEON_E5).id == full.id
    finally:
        with held(salt_cli, minion, mongo.name):
            one(docker_engine, "mongo", XEON_E5).remove(force=True)
            docker_engine.volumes.get(volume).remove()
        ret = salt_cli.run("state.apply", "energy.mongo", minion_tgt=minion)
        assert ret.returncode == 0, ret.stdout
        heal_everywhere(salt_cli, docker_engine)


# --------------------------------------------------------------------------- clock skew


def stale(probe, seen, clock):
    """The sensor's freshness verdict as a check with ``clock`` gives it, keeping what it saw in ``seen``."""
    reason, keep = health.freshness(health.newest_point(probe), clock(), probe["max_age"], seen.get("kept"))
    if keep is not None:
        seen["kept"] = keep
    return reason


def test_a_sensor_90_s_off_the_checkers_clock_is_never_stale_and_a_stopped_one_still_is(
        deployed, salt_cli, docker_engine):
    """The rule of energy_core.health.freshness on the real stack's points: the check runs here
    with its clock 90 s ahead of the sensor's, and 90 s behind."""
    # a Xeon Gold sensor: its databases are not the ones the tests above broke
    sensor = sorted(containers(docker_engine, energy_component="sensor", energy_cpu=XEON_GOLD), key=lambda c: c.name)[0]
    node = salt_cli.run("energy.node", minion_tgt=sensor.labels["energy.minion"]).data
    (spec,) = [c for c in node["containers"] if c["name"] == sensor.name]
    probe = dict(spec["health"]["fresh"], max_age=30)
    # its points flow (by this host's clock, which is the sensor's here)
    assert wait_for(lambda: time.time() - (health.newest_point(probe) or 0) < 20, 180, interval=3), \
        f"no recent point of {sensor.name}"
    skews = {"ahead": 90, "behind": -90}
    seen = {name: {} for name in skews}
    # the premise: by the clocks alone, the sensor looks 90 s stale to the clock that is ahead
    assert time.time() + 90 - health.newest_point(probe) > probe["max_age"]
    for _ in range(8):  # 80 s: more than twice max_age of checks, every 10 s
        for name, skew in skews.items():
            assert stale(probe, seen[name], lambda skew=skew: time.time() + skew) is None, name
        time.sleep(10)
    pids = [int(row[1]) for row in sensor.top()["Processes"]]  # host pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # hung: Docker still says running, no new point comes
    try:
        verdicts = {}

        def stale_everywhere():
            for name, skew in skews.items():
                verdicts[name] = stale(probe, seen[name], lambda skew=skew: time.time() + skew)
            return all(verdicts.values())

        stopped = time.time()
        assert wait_for(stale_everywhere, 120, interval=5), verdicts
        assert time.time() - stopped >= probe["max_age"]
        assert all("has not changed for" in v for v in verdicts.values()), verdicts
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


# --------------------------------------------------------------------------- a container dying while the master is down


def test_a_container_that_dies_while_the_master_is_down_is_healed(
        deployed, salt_master, salt_cli, docker_engine, pillar_tree, pillar):
    def every_10_s(energy):
        energy["heal"]["schedule"] = {"enabled": True, "seconds": 10, "splay": 0}

    victim = one(docker_engine, "formula", XEON_E5)
    minion = victim.labels["energy.minion"]
    with pillar_changed(salt_cli, pillar_tree, pillar, every_10_s):
        try:
            ret = salt_cli.run("state.apply", "energy.heal", minion_tgt=minion)  # the schedule, and the kept plan
            assert ret.returncode == 0, ret.stdout
            assert "energy-heal" in salt_cli.run("schedule.list", "return_yaml=False", minion_tgt=minion).data
            salt_master.terminate()
            with contextlib.suppress(docker.errors.NotFound):  # already gone: the heal's work is the same
                victim.kill()
            killed = time.time()
            back = wait_for(lambda: docker_engine.containers.list(
                filters={"name": f"^{victim.name}$", "status": "running"}, ignore_removed=True), 120, interval=2)
            assert back and back[0].id != victim.id, f"{victim.name} not healed {time.time() - killed:.0f} s " \
                                                     "after it died with the master down"
            assert not salt_master.is_running()  # healed by the minion alone
        finally:
            if not salt_master.is_running():
                salt_master.start(start_timeout=120)
            wait_for(lambda: salt_cli.run("test.ping", minion_tgt=minion, _timeout=30).data is True, 120, interval=3)
            for name in ("energy-heal", "energy-heal-full"):
                salt_cli.run("schedule.delete", name, minion_tgt=minion)
    # with the master back, the minion answers and the stack is whole
    assert salt_cli.run("test.ping", minion_tgt=minion).data is True
    assert one(docker_engine, "formula", XEON_E5).status == "running"
    settled(docker_engine)
