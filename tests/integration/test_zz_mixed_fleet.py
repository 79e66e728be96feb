"""A mixed fleet end to end (issue 25, item 4), on the test minions with real daemons: mode common
across CPU names with an added event, a TDP that reaches the running SmartWatts, the free-space
refusal before anything is touched, and the TTL expiry of old reports in MongoDB.

Runs after the other modules but test_zz_strategies (hence its name): it redeploys the stack with
other sensor events, then puts it back."""

import contextlib
import datetime
import json
import time

import pytest

from energy_core import events, mongo_wire, names
from tests.integration.conftest import (EPYC, MINIONS, XEON_E5, XEON_GOLD, containers, failed_steps, mongo_user,
                                        one, pillar_changed, settled)
from tests.integration.test_zz_strategies import power_arrives

TDP_W = 150
ADDED = "LLC_MISSES"  # an Intel event of both Intel families, which common mode drops (Zen 2 has no LLC role)
ROLE_OF = {event: role for table in events.EVENTS_BY_ROLE.values() for role, event in table.items()}


def common_with_an_added_event(energy):
    energy["sensor"].update(mode="common", extra_events={XEON_GOLD: [ADDED], XEON_E5: [ADDED]})
    energy["facts"] = {"tdp_w": TDP_W}


def sensor_config(pillar, minion):
    with open(names.sensor_config_file(pillar["energy"]["config_dir"], minion), encoding="utf-8") as handle:
        return json.load(handle)


def container_ids(docker_engine):
    return sorted(c.id for c in containers(docker_engine))


@pytest.fixture(scope="module")
def mixed(deployed, salt_run_cli, salt_cli, docker_engine, pillar_tree, pillar):
    """The stack redeployed in mode common with an added event and a TDP; put back afterwards."""
    with pillar_changed(salt_cli, pillar_tree, pillar, common_with_an_added_event):
        ret = salt_run_cli.run("state.orchestrate", "energy.orch")
        assert ret.returncode == 0, failed_steps(ret.data)
        changed_at = time.time()
        settled(docker_engine)
        yield changed_at
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode == 0, failed_steps(ret.data)


def test_common_mode_gives_every_sensor_the_same_roles_and_the_added_event_reaches_both_intel_names(
        mixed, pillar, docker_engine):
    roles = {}
    for minion, (_address, facts) in MINIONS.items():
        config = sensor_config(pillar, minion)
        core = config["container"]["core"]["events"]
        roles[minion] = [ROLE_OF.get(e, e) for e in core]
        # no DRAM anywhere: the EPYC has no DRAM domain, and common mode takes what every CPU has
        assert "RAPL_ENERGY_DRAM" not in config["system"]["rapl"]["events"]
        (sensor,) = containers(docker_engine, energy_component="sensor", energy_minion=minion)
        assert sensor.status == "running", sensor.logs(tail=10)
        if facts["cpu_name"] in (XEON_GOLD, XEON_E5):
            assert core[-1] == ADDED
    assert {tuple(r) for m, r in roles.items() if MINIONS[m][1]["cpu_name"] != EPYC} == {
        ("cycles", "instructions", ROLE_OF[ADDED])}
    assert roles["test-node-b"] == ["cycles", "instructions"]


def test_power_arrives_from_every_sensor_of_the_mixed_fleet(mixed, salt_cli, workloads):
    power_arrives(salt_cli, mixed, workloads)


def test_the_tdp_reaches_every_running_smartwatts(mixed, docker_engine):
    formulas = containers(docker_engine, all=False, energy_component="formula")
    assert {f.labels["energy.cpu"] for f in formulas} == {XEON_GOLD, XEON_E5, EPYC}
    for formula in formulas:
        formula.reload()
        args = formula.attrs["Args"]
        assert args[args.index("--cpu-tdp") + 1] == str(TDP_W), args
        assert "--disable-dram-formula" in args


def test_a_host_without_room_for_its_volumes_is_refused_before_anything_is_touched(
        deployed, salt_run_cli, salt_cli, docker_engine, pillar_tree, pillar):
    """The dedicated strategy gives every sensor machine a MongoDB and an InfluxDB of its own: new
    volumes, sized for an experiment that no disk of this machine holds."""
    before = container_ids(docker_engine)
    volumes = sorted(v.name for v in docker_engine.volumes.list() if v.name.startswith("energy-test-"))

    def huge(energy):
        energy.update(strategy="dedicated", strategy_change="allow", roles={"sensors": energy["roles"]["sensors"]})
        energy["experiment"].update(containers=100000, duration="3650d", buffer="30d")

    with pillar_changed(salt_cli, pillar_tree, pillar, huge):
        ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode != 0
    text = str(ret.data)
    assert list(failed_steps(ret.data)) == ["salt_|-energy-orch-plan-check-function_|-energy.check_|-function"]
    for minion in ("test-node-b", "test-node-c"):  # no database there before: every volume is new
        assert f"energy:experiment: {minion} needs " in text
    assert "for its new database volumes" in text and "free. Fix: a shorter energy:experiment:duration" in text
    assert "energy-databases-deploy-orch" not in text
    assert container_ids(docker_engine) == before
    assert sorted(v.name for v in docker_engine.volumes.list() if v.name.startswith("energy-test-")) == volumes


def test_reports_older_than_the_buffer_expire_in_mongodb(deployed, docker_engine, pillar):
    """The TTL index (energy:experiment:buffer, 1 h here) removes reports no SmartWatts read: with
    the E5's SmartWatts paused, a report two hours old goes at the next sweep (every 60 s) while the
    sensor's fresh ones stay."""
    slug = names.cpu_slugs([XEON_GOLD, XEON_E5, EPYC])[XEON_E5]
    address, database = f"{MINIONS['test-node-a'][0]}:27017", names.sensor_database(slug)
    sensor = dict(zip(("user", "password"), mongo_user("sensor", slug)))
    formula = dict(zip(("user", "password"), mongo_user("formula", slug)))
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    smartwatts = one(docker_engine, "formula", XEON_E5)
    smartwatts.pause()
    try:
        inserted = mongo_wire.command(address, database, {"insert": "hwpc", "documents": [
            {"timestamp": old, "sensor": "ttl-probe", "target": "ttl-probe", "groups": {}}]}, **sensor)
        assert inserted["ok"] == 1 and inserted["n"] == 1

        def count(sensor_name):
            return mongo_wire.command(address, database, {"count": "hwpc", "query": {"sensor": sensor_name}},
                                      **formula)["n"]

        assert count("ttl-probe") == 1
        deadline = time.time() + 150
        while time.time() < deadline and count("ttl-probe"):
            time.sleep(5)
        assert count("ttl-probe") == 0, "the TTL sweep did not remove a report two hours old"
        assert count("test-node-c") > 0  # the sensor's own reports, younger than the buffer, stay
    finally:
        with contextlib.suppress(Exception):
            smartwatts.unpause()
