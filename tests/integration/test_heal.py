"""The stack heals itself: energy.heal recreates what died, logs it, fires energy/heal/<component>,
and no stored point is lost; the pillar-driven schedule does it with nobody acting."""

import json
import os
import time

from tests.integration.conftest import MONGO_PASSWORDS, XEON_E5, XEON_GOLD, containers, one, pillar_changed, settled
from tests.power import influx


def points(info):
    return influx(info["influxdb_url"], info["influxdb_database"],
                  "SELECT count(power) FROM power_consumption")[0]["values"][0][1]


def heal(salt_cli, minion, *args):
    """Apply energy.heal on one minion; returns the run and its states that changed something."""
    ret = salt_cli.run("state.apply", "energy.heal", *args, minion_tgt=minion)
    changed = {sid: r for sid, r in ret.data.items() if r.get("changes")} if isinstance(ret.data, dict) else {}
    return ret, changed


def test_test_mode_says_what_it_would_recreate_and_why(deployed, salt_cli, docker_engine):
    formula = one(docker_engine, "formula", XEON_E5)
    formula.kill()
    try:
        ret, _ = heal(salt_cli, "test-ctl", "test=True")
        comments = [r["comment"] for r in ret.data.values()]
        assert f"would recreate formula container {formula.name} because the container is exited" in comments
        formula.reload()
        assert formula.status == "exited"  # test mode changed nothing
    finally:
        heal(salt_cli, "test-ctl")


def test_heal_recreates_killed_removed_and_stopped_containers(deployed, plan, salt_cli, salt_minions, docker_engine,
                                                             event_listener, salt_master):
    gold = plan["cpus"][XEON_GOLD]
    stored = points(gold)
    start = time.time()
    victims = {
        "formula": one(docker_engine, "formula", XEON_GOLD),   # killed
        "influxdb": one(docker_engine, "influxdb", XEON_GOLD),  # removed
        "mongo": one(docker_engine, "mongo", XEON_GOLD),        # stopped
    }
    victims["formula"].kill()
    victims["influxdb"].remove(force=True)
    victims["mongo"].stop(timeout=1)

    ret, changed = heal(salt_cli, "test-ctl")
    assert ret.returncode == 0, ret.stdout
    recreated = {r["changes"]["recreated"]["component"]: r["changes"]["recreated"] for r in changed.values()}
    assert set(recreated) >= {"formula", "influxdb", "mongo"}
    assert recreated["influxdb"]["reason"] == "the container is missing"
    assert recreated["mongo"]["reason"] == "the container is exited"
    assert all(r["healed"] for r in recreated.values())
    for component, victim in victims.items():
        container = one(docker_engine, component, XEON_GOLD)
        assert container.status == "running" and container.name == victim.name

    events = event_listener.wait_for_events(
        [(salt_master.id, f"energy/heal/{component}") for component in victims], after_time=start, timeout=30)
    assert events.found_all_events, events.missed
    for event in events:
        assert event.data["data"]["minion"] == "test-ctl"
        assert event.data["data"]["container"] == victims[event.tag.rsplit("/", 1)[1]].name
        assert event.data["data"]["duration"] > 0

    log = open(salt_minions["test-ctl"].config["log_file"], encoding="utf-8").read()
    assert f"energy heal: influxdb container {victims['influxdb'].name} is unhealthy (the container is missing; found by health check)" in log

    # the InfluxDB came back on its volume: every point stored before is still there, and new ones come
    deadline = time.time() + 60
    while points(gold) <= stored and time.time() < deadline:
        time.sleep(2)
    assert points(gold) > stored


def test_the_schedule_heals_with_nobody_acting(deployed, salt_cli, docker_engine, pillar_tree, pillar):
    def every_10_s(energy):
        energy["heal"]["schedule"] = {"enabled": True, "seconds": 10, "splay": 0}

    with pillar_changed(salt_cli, pillar_tree, pillar, every_10_s):
        try:
            ret, _ = heal(salt_cli, "test-ctl")  # installs the schedule
            assert ret.returncode == 0, ret.stdout
            schedule = salt_cli.run("schedule.list", "return_yaml=False", minion_tgt="test-ctl").data
            assert schedule["energy-heal"]["maxrunning"] == 1
            assert schedule["energy-heal"]["seconds"] == 10
            assert schedule["energy-heal"]["function"] == "energy_heal.heal_check"  # the light check
            assert schedule["energy-heal"]["return_job"] is False  # no return every period from every minion
            assert schedule["energy-heal-full"].get("return_job", True) is not False  # the full run returns
            assert schedule["energy-heal-full"]["function"] == "state.apply"
            assert schedule["energy-heal-full"]["seconds"] == 7200
            # neither runs when the minion (re)loads its schedule: every orch's module refresh
            assert schedule["energy-heal"]["run_on_start"] is False
            assert schedule["energy-heal-full"]["run_on_start"] is False
            victim = one(docker_engine, "formula", XEON_E5)
            victim.remove(force=True)
            killed = time.time()
            deadline = killed + 10 + 60  # one period, plus the time a run takes on this 2-core machine
            back = []
            while time.time() < deadline and not back:
                back = docker_engine.containers.list(filters={"name": victim.name, "status": "running"}, ignore_removed=True)
                time.sleep(1)
            assert back, f"{victim.name} not back {deadline - killed:.0f} s after its removal"
        finally:
            # schedule.delete, not a state run: a scheduled state run may be going on right now
            salt_cli.run("schedule.delete", "energy-heal", minion_tgt="test-ctl")
            salt_cli.run("schedule.delete", "energy-heal-full", minion_tgt="test-ctl")
    # a scheduled run that started before the pillar came back re-adds the schedule: delete, let
    # the runs in flight end, and look again
    for _ in range(3):
        salt_cli.run("schedule.delete", "energy-heal", minion_tgt="test-ctl")
        deadline = time.time() + 120
        while salt_cli.run("saltutil.running", minion_tgt="test-ctl").data and time.time() < deadline:
            time.sleep(2)
        schedule = salt_cli.run("schedule.list", "return_yaml=False", minion_tgt="test-ctl").data or {}
        if "energy-heal" not in schedule:
            break
    assert "energy-heal" not in schedule
    # with the schedule off (the pillar is back), a heal run keeps it off
    ret, _ = heal(salt_cli, "test-ctl")
    assert ret.returncode == 0, ret.stdout
    assert not {"energy-heal", "energy-heal-full"} & set(
        salt_cli.run("schedule.list", "return_yaml=False", minion_tgt="test-ctl").data or {})


def test_the_light_check_recreates_only_what_fails_and_keeps_what_it_found(deployed, salt_cli, docker_engine):
    ret, _ = heal(salt_cli, "test-ctl")  # keeps this minion's containers for the light check
    assert ret.returncode == 0, ret.stdout
    kept = salt_cli.run("energy_heal.node_kept_file", minion_tgt="test-ctl").data
    assert oct(os.stat(kept).st_mode & 0o777) == "0o600"  # the formula's probe holds its MongoDB password
    victim = one(docker_engine, "formula", XEON_E5)
    others = {c.name: c.id for c in containers(docker_engine, all=False, energy_minion="test-ctl")
              if c.name != victim.name}
    victim.kill()
    ret = salt_cli.run("energy_heal.heal_check", minion_tgt="test-ctl")
    assert ret.returncode == 0, ret.stdout
    assert list(ret.data["recreated"]) == [victim.name], ret.data
    assert "recreated formula container" in ret.data["recreated"][victim.name]
    assert sorted(ret.data["healthy"]) == sorted(others)  # the rest was only looked at
    assert {c.name: c.id for c in containers(docker_engine, all=False, energy_minion="test-ctl")
            if c.name != victim.name} == others
    assert one(docker_engine, "formula", XEON_E5).status == "running"
    for secret in MONGO_PASSWORDS.values():
        assert secret not in ret.stdout
    # a second check finds everything healthy and recreates nothing
    again = salt_cli.run("energy_heal.heal_check", minion_tgt="test-ctl").data
    assert again["recreated"] == {} and victim.name in again["healthy"]


def test_a_directory_docker_made_at_the_sensor_config_is_replaced_by_the_file(deployed, salt_cli, docker_engine):
    # the sensor's config file is gone when Docker starts the container again: Docker makes an
    # empty directory there, the sensor exits at once, and file.serialize alone would report that
    # path written without writing it
    sensor = one(docker_engine, "sensor", XEON_E5)
    minion = sensor.labels["energy.minion"]
    source = next(m["Source"] for m in sensor.attrs["Mounts"] if m["Destination"] == "/etc/hwpc-sensor/config.json")
    sensor.stop(timeout=1)
    os.remove(source)
    try:
        sensor.start()
    except Exception:  # pylint: disable=broad-except  (the engine may refuse; the directory is what counts)
        pass
    try:
        assert os.path.isdir(source)
        ret = salt_cli.run("state.apply", "energy.sensor", minion_tgt=minion)
        assert ret.returncode == 0, ret.stdout
        removed = [r for sid, r in ret.data.items() if "-dir-absent-" in sid and r.get("changes")]
        assert len(removed) == 1, ret.stdout
        assert os.path.isfile(source)
        with open(source, encoding="utf-8") as handle:
            assert '"output"' in handle.read()  # the sensor's JSON config is back
        assert one(docker_engine, "sensor", XEON_E5).status == "running"
        again = salt_cli.run("state.apply", "energy.sensor", minion_tgt=minion)
        assert again.returncode == 0 and not any(r.get("changes") for r in again.data.values()), again.stdout
    finally:
        if os.path.isdir(source):
            os.rmdir(source)
        salt_cli.run("state.apply", "energy.sensor", minion_tgt=minion)


def test_a_sensor_refusing_a_system_event_is_left_with_its_group_and_the_fix(deployed, salt_cli, docker_engine,
                                                                             event_listener, salt_master, salt_minions):
    """A sensor that refuses an event of its system group sends no `all` report: recreating it
    would refuse again. The light check, the heal state and the reactor leave it, naming the event,
    the group (from the config the formula wrote when the sensor names none) and the fix, and
    energy/unhealthy/sensor says so once."""
    sensor = one(docker_engine, "sensor", XEON_E5)
    minion = sensor.labels["energy.minion"]
    source = next(m["Source"] for m in sensor.attrs["Mounts"] if m["Destination"] == "/etc/hwpc-sensor/config.json")
    with open(source, encoding="utf-8") as handle:
        original = handle.read()
    config = json.loads(original)
    config["system"]["rapl"]["events"].append("RAPL_ENERGY_NOPE")
    with open(source, "w", encoding="utf-8") as handle:  # the same file (its mode stays 0600)
        json.dump(config, handle)
    start = time.time()
    sensor.restart(timeout=1)
    try:
        deadline, found = time.time() + 60, {}
        while time.time() < deadline and sensor.name not in found.get("left", {}):
            found = salt_cli.run("energy_heal.heal_check", minion_tgt=minion).data
            time.sleep(0 if sensor.name in found.get("left", {}) else 3)
        reason = found["left"][sensor.name]
        assert "system group 'rapl' cannot count event 'RAPL_ENERGY_NOPE'" in reason, found
        assert "no `all` report" in reason and "Fix: remove 'RAPL_ENERGY_NOPE' from energy:sensor:events" in reason
        assert sensor.name not in found["recreated"]
        events = event_listener.wait_for_events([(salt_master.id, "energy/unhealthy/sensor")], after_time=start,
                                                timeout=30)
        assert events.found_all_events, events.missed
        (event,) = [e for e in events if e.data["data"]["container"] == sensor.name]
        assert "RAPL_ENERGY_NOPE" in event.data["data"]["reason"] and event.data["data"]["minion"] == minion
        # the heal state says the same and changes nothing; the news is not fired again
        fired = len(event_listener.get_events([(salt_master.id, "energy/unhealthy/sensor")], after_time=start))
        ret = salt_cli.run("state.apply", "energy.heal", minion_tgt=minion)
        (check,) = [r for sid, r in ret.data.items() if "health" in sid and sensor.name in sid]
        assert check["result"] is False and "cannot count event 'RAPL_ENERGY_NOPE'" in check["comment"], check
        assert not check["changes"]
        assert one(docker_engine, "sensor", XEON_E5).id == sensor.id  # left, not recreated
        time.sleep(2)
        assert len(event_listener.get_events([(salt_master.id, "energy/unhealthy/sensor")], after_time=start)) == fired
        log = open(salt_minions[minion].config["log_file"], encoding="utf-8").read()
        assert f"energy heal: sensor container {sensor.name} is unhealthy: the hwpc-sensor refused its config" in log
    finally:
        with open(source, "w", encoding="utf-8") as handle:
            handle.write(original)
        one(docker_engine, "sensor", XEON_E5).restart(timeout=1)
        settled(docker_engine)
