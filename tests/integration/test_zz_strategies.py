"""Deployment strategies and formula shards, end to end on the test minions: the orch deploys each,
the containers run where the plan says (by their labels), and every workload container's power
arrives in the database hostname_to_influx names, through real SmartWatts and real InfluxDB.

Runs last (hence its name): it moves the whole test stack from one strategy to the next."""

import contextlib
import time

from tests.integration.conftest import (EPYC, MINIONS, XEON_E5, XEON_GOLD, containers, failed_steps, pillar_changed,
                                       settled)
from tests.power import influx


def running(docker_engine, **labels):
    return sorted((c.labels["energy.minion"], c.name) for c in containers(docker_engine, all=False, **labels))


def orch(salt_run_cli):
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    return ret, time.time()


def power_arrives(salt_cli, since, workloads, minions=MINIONS, timeout=180):
    """Every workload container (``workloads``: their target names) has a point newer than ``since``
    from every minion's sensor in the InfluxDB and database energy.hostname_to_influx gives for it."""
    where = salt_cli.run("energy.hostname_to_influx", minion_tgt="test-ctl").data
    missing = {}
    deadline = time.time() + timeout
    while time.time() < deadline:
        missing = {}
        for minion in minions:
            target = where[minion]
            series = influx(target["url"], target["database"],
                            f"SELECT count(power) FROM power_consumption WHERE sensor = '{minion}' AND scope = 'cpu' "
                            f"AND time > {int(since * 1000)}ms GROUP BY target")
            seen = {s["tags"]["target"] for s in series}
            lacking = set(workloads) - seen
            if lacking:
                missing[minion] = sorted(lacking)
        if not missing:
            return where
        time.sleep(5)
    raise AssertionError(f"no power after {timeout} s for {missing}; {why(missing)}")


def why(missing):
    """The last lines of the sensors' and formulas' logs of the machines whose power is missing."""
    import docker  # pylint: disable=import-outside-toplevel

    client = docker.from_env()
    out = []
    for minion in missing:
        for container in client.containers.list(all=True, filters={"label": "energy.minion"}, ignore_removed=True):
            if container.labels.get("energy.component") in ("sensor", "formula") and (
                    container.labels.get("energy.minion") == minion or minion in container.name
                    or container.labels.get("energy.cpu") == MINIONS[minion][1]["cpu_name"]):
                logs = container.logs(tail=8).decode(errors="replace")
                out.append(f"{container.name} ({container.status}):\n{logs}")
    return "\n".join(dict.fromkeys(out))


@contextlib.contextmanager
def strategy(salt_cli, pillar_tree, pillar, **energy):
    def change(conf):
        for key, value in energy.items():
            if isinstance(value, dict):
                conf.setdefault(key, {}).update(value)
            else:
                conf[key] = value

    with pillar_changed(salt_cli, pillar_tree, pillar, change):
        yield


def test_a_strategy_change_is_refused_until_allowed_and_nothing_is_touched(
        deployed, salt_run_cli, salt_cli, docker_engine, pillar_tree, pillar):
    before = sorted(settled(docker_engine).values())  # what earlier tests broke is mended
    with strategy(salt_cli, pillar_tree, pillar, strategy="shared"):
        ret, _ = orch(salt_run_cli)
        assert ret.returncode != 0
        (step,) = failed_steps(ret.data)
        assert step == "salt_|-energy-orch-plan-check-function_|-energy.check_|-function"
        text = str(ret.data)
        assert "energy:strategy_change: bad value 'refuse'" in text
        assert "energy-test-node-a-mongo-intel_xeon_e5_2630_v3" in text and "Fix: back up and restore" in text
    assert sorted(c.id for c in containers(docker_engine)) == before


def test_shared_runs_one_mongodb_and_one_influxdb_for_every_cpu_name(
        deployed, workloads, salt_run_cli, salt_cli, docker_engine, pillar_tree, pillar):
    volumes_before = {v.name for v in docker_engine.volumes.list() if v.name.startswith("energy-test-")}
    with strategy(salt_cli, pillar_tree, pillar, strategy="shared", strategy_change="allow"):
        ret, returned = orch(salt_run_cli)
        assert ret.returncode == 0, failed_steps(ret.data)
        # the first host of mongos and of influxdbs holds them all, one container each
        assert running(docker_engine, energy_component="mongo") == [("test-ctl", "energy-test-ctl-mongo")]
        assert running(docker_engine, energy_component="influxdb") == [("test-ctl", "energy-test-ctl-influxdb")]
        assert len(running(docker_engine, energy_component="formula")) == 3  # still one per CPU name
        where = power_arrives(salt_cli, returned, workloads)
        assert {w["url"] for w in where.values()} == {f"http://{MINIONS['test-ctl'][0]}:8086"}
        assert {w["database"] for w in where.values()} == {
            "power_intel_xeon_gold_6130", "power_amd_epyc_7452", "power_intel_xeon_e5_2630_v3"}
    # the per_cpu containers went, their volumes (and the points in them) stay
    volumes_after = {v.name for v in docker_engine.volumes.list() if v.name.startswith("energy-test-")}
    assert volumes_before <= volumes_after


def test_a_cpu_name_with_more_sensors_than_max_sensors_gets_one_smartwatts_per_shard(
        deployed, workloads, salt_run_cli, salt_cli, docker_engine, pillar_tree, pillar):
    with strategy(salt_cli, pillar_tree, pillar, strategy="shared", strategy_change="allow",
                  formula={"max_sensors": 1}):
        ret, returned = orch(salt_run_cli)
        assert ret.returncode == 0, failed_steps(ret.data)
        gold = running(docker_engine, energy_component="formula", energy_cpu=XEON_GOLD)
        assert [name for _, name in gold] == ["energy-test-ctl-formula-intel_xeon_gold_6130-1",
                                              "energy-test-ctl-formula-intel_xeon_gold_6130-2"]
        # the two shards together cover both Xeon Gold machines, each read by its own SmartWatts
        power_arrives(salt_cli, returned, workloads, minions=["test-ctl", "test-node-a"])
        for (_, name), collection in zip(gold, ("hwpc_1", "hwpc_2")):
            args = docker_engine.containers.get(name).attrs["Args"]
            assert args[args.index("--collection") + 1] == collection
        assert len(running(docker_engine, energy_component="formula", energy_cpu=EPYC)) == 1


def test_dedicated_runs_a_whole_stack_next_to_each_sensor(
        deployed, workloads, salt_run_cli, salt_cli, docker_engine, pillar_tree, pillar):
    roles = dict(pillar["energy"]["roles"], mongos=None, formulas=None, influxdbs=None)
    with strategy(salt_cli, pillar_tree, pillar, strategy="dedicated", strategy_change="allow", roles=roles):
        ret, returned = orch(salt_run_cli)
        assert ret.returncode == 0, failed_steps(ret.data)
        for component in ("mongo", "formula", "influxdb"):
            assert running(docker_engine, energy_component=component) == sorted(
                (m, f"energy-{m}-{component}") for m in MINIONS)
        where = power_arrives(salt_cli, returned, workloads)
        # each machine's power is in its own InfluxDB, on its own address
        assert {m: w["url"] for m, w in where.items()} == {m: f"http://{a}:8086" for m, (a, _) in MINIONS.items()}
        assert where["test-node-c"]["database"] == "power_intel_xeon_e5_2630_v3" and where["test-node-c"]["cpu"] == XEON_E5
