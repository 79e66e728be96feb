"""One orchestrate run deploys the whole stack, placed by CPU name, on the real Docker engine."""

import pathlib
import stat
import urllib.parse

import pytest

from energy_core import mongo_wire
from tests.integration.conftest import (EPYC, GRAFANA_PASSWORD, MINIONS, MONGO_PASSWORDS, TEST_NETWORK, XEON_E5,
                                       XEON_GOLD, containers, failed_steps, mongo_user, pillar_changed, state_changes,
                                       write_pillar)
from tests.conftest import ROOT
from tests.power import influx

# The placement the pillar asks for: CPU names sorted -> AMD, Xeon E5, Xeon Gold; mongos [test-ctl, test-node-a]
# wrap around, influxdbs [test-ctl, test-node-b] wrap around, one formula host.
EXPECTED = {
    EPYC: {"mongo": "test-ctl", "influxdb": "test-ctl", "formula": "test-ctl", "sensors": ["test-node-b"]},
    XEON_E5: {"mongo": "test-node-a", "influxdb": "test-node-b", "formula": "test-ctl", "sensors": ["test-node-c"]},
    XEON_GOLD: {"mongo": "test-ctl", "influxdb": "test-ctl", "formula": "test-ctl", "sensors": ["test-ctl", "test-node-a"]},
}


def running(docker_engine, **labels):
    return containers(docker_engine, all=False, **labels)


def test_orchestrate_places_every_container_on_the_planned_minion(deployed, docker_engine):
    assert not failed_steps(deployed)
    # the stack spans several machines, so the orch says which databases are open to the network
    text = str(deployed)
    assert f"InfluxDB for {XEON_GOLD} on test-ctl (http://{MINIONS['test-ctl'][0]}:8087) answers without authentication" in text
    assert "MongoDB for" not in text  # MongoDB authenticates (SCRAM), so it is not named as open
    for secret in [GRAFANA_PASSWORD, *MONGO_PASSWORDS.values()]:  # every step's return masks secrets
        assert secret not in text and urllib.parse.quote(secret, safe="") not in text
    for cpu, where in EXPECTED.items():
        for component in ("mongo", "influxdb", "formula"):
            found = running(docker_engine, energy_component=component, energy_cpu=cpu)
            assert [c.labels["energy.minion"] for c in found] == [where[component]], (component, cpu)
        sensors = running(docker_engine, energy_component="sensor", energy_cpu=cpu)
        assert sorted(c.labels["energy.minion"] for c in sensors) == where["sensors"]


def test_wrapped_hosts_run_one_container_per_cpu_name_on_distinct_ports(deployed, docker_engine):
    mongos = running(docker_engine, energy_component="mongo", energy_minion="test-ctl")
    assert len(mongos) == 2  # AMD and Xeon Gold both wrapped onto test-ctl
    ports = sorted(c.attrs["HostConfig"]["PortBindings"]["27017/tcp"][0]["HostPort"] for c in mongos)
    assert ports == ["27017", "27018"]
    bound = {c.attrs["HostConfig"]["PortBindings"]["27017/tcp"][0]["HostIp"] for c in mongos}
    assert bound == {MINIONS["test-ctl"][0]}


def formula_uri(minion, slug):
    """The formula's URI of the MongoDB on ``minion``: by container name and the inside port, as
    every test minion runs its containers on the one engine (the stack's network)."""
    user, password = mongo_user("formula", slug)
    return f"mongodb://{user}:{password}@energy-{minion}-mongo-{slug}:27017/?authSource=admin"


def environment(container):
    return dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])


def test_formula_reads_its_cpu_mongo_and_base_frequency(deployed, docker_engine):
    (amd,) = running(docker_engine, energy_component="formula", energy_cpu=EPYC)
    args = amd.attrs["Args"]
    assert args[args.index("--cpu-base-freq") + 1] == "2350"
    assert "--disable-dram-formula" in args  # the EPYC has no DRAM RAPL domain
    # its MongoDB URI, with the formula user's password, is in its environment, not on its command line
    assert environment(amd)["POWERAPI_INPUT_PULLER_URI"] == formula_uri("test-ctl", "amd_epyc_7452")
    assert not any(p in " ".join(args) for p in MONGO_PASSWORDS.values())
    (e5,) = running(docker_engine, energy_component="formula", energy_cpu=XEON_E5)
    assert environment(e5)["POWERAPI_INPUT_PULLER_URI"] == formula_uri("test-node-a", "intel_xeon_e5_2630_v3")
    assert "--disable-dram-formula" not in e5.attrs["Args"]


def test_sensor_config_names_the_database_of_its_cpu(deployed, docker_engine, config_dir):
    import json

    path = config_dir / "energy-test-node-c-sensor.json"
    config = json.loads(path.read_text())
    assert config["name"] == "test-node-c"
    user, password = mongo_user("sensor", "intel_xeon_e5_2630_v3")  # its CPU name's own user
    assert config["output"] == {
        "type": "mongodb",  # test-node-a's MongoDB, by container name on the test network (one engine)
        "uri": f"mongodb://{user}:{password}@energy-test-node-a-mongo-intel_xeon_e5_2630_v3:27017/?authSource=admin",
        "database": "sensors_intel_xeon_e5_2630_v3", "collection": "hwpc"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == 0  # it holds a password
    assert config["system"]["rapl"]["events"] == ["RAPL_ENERGY_PKG", "RAPL_ENERGY_DRAM"]


def steps_of(orch_ret):
    return {sid.split("_|-")[1]: step for steps in orch_ret.get("data", orch_ret).values() if isinstance(steps, dict)
            for sid, step in steps.items()}


def test_second_run_changes_nothing(deployed, salt_run_cli):
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode == 0, ret.stdout
    assert state_changes(ret.data) == {}
    # every minion has the master's copy of the formula's modules: no sync step, no reload before
    # the mine; every minion still loads its part of the plan
    steps = steps_of(ret.data)
    assert "energy-orch-modules-sync-state" not in steps and "energy-orch-pillar-refresh-function" not in steps
    assert steps["energy-orch-plan-refresh-function"]["result"] is True


def test_only_a_minion_whose_modules_are_not_the_master_s_is_synced(deployed, salt_run_cli, salt_cli):
    extension_modules = salt_cli.run("config.get", "extension_modules", minion_tgt="test-node-c").data
    names = pathlib.Path(extension_modules) / "utils" / "energy_core" / "names.py"
    served = (ROOT / "_utils" / "energy_core" / "names.py").read_text()
    assert names.read_text() == served
    names.write_text(served + "# changed on this minion\n")
    # the minion reloads its grains and sends them with its pillar request: the master's cache
    salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="test-node-c")
    assert salt_cli.run("grains.get", "energy_extmods", minion_tgt="test-node-b").data != \
        salt_cli.run("grains.get", "energy_extmods", minion_tgt="test-node-c").data
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode == 0, failed_steps(ret.data)
    sync = steps_of(ret.data)["energy-orch-modules-sync-state"]
    assert sorted((sync.get("changes") or {}).get("ret") or {}) == ["test-node-c"], sync
    assert "test-node-c" in str(sync.get("comment")) and "test-node-b" not in str(sync.get("comment"))
    assert names.read_text() == served  # the master's copy again
    assert salt_cli.run("grains.get", "energy_extmods", minion_tgt="test-node-b").data == \
        salt_cli.run("grains.get", "energy_extmods", minion_tgt="test-node-c").data


def test_test_mode_changes_nothing_and_lists_what_would_change(deployed, salt_run_cli, docker_engine):
    (victim,) = running(docker_engine, energy_component="formula", energy_cpu=XEON_E5)
    victim.remove(force=True)
    try:
        ret = salt_run_cli.run("state.orchestrate", "energy.orch", "test=True")
        assert ret.returncode == 0, ret.stdout
        assert not running(docker_engine, energy_component="formula", energy_cpu=XEON_E5)
        text = str(ret.data)
        assert "energy-formula-container-running-energy-test-ctl-formula-intel_xeon_e5_2630_v3" in text
        assert "would be created" in text.lower() or "will be created" in text.lower()
        assert "Runner function 'energy.reactor' would be executed" in text
    finally:
        ret = salt_run_cli.run("state.orchestrate", "energy.orch")
        assert ret.returncode == 0, ret.stdout
    assert running(docker_engine, energy_component="formula", energy_cpu=XEON_E5)


def test_a_minion_down_is_named_and_the_rest_is_deployed(deployed, salt_minions, salt_run_cli, docker_engine):
    # test-node-c only runs a sensor; the EPYC formula on test-ctl and test-node-b's sensor are gone too
    (formula,) = running(docker_engine, energy_component="formula", energy_cpu=EPYC)
    (sensor,) = running(docker_engine, energy_component="sensor", energy_minion="test-node-b")
    formula.remove(force=True)
    sensor.remove(force=True)
    node_c = salt_minions["test-node-c"]
    node_c.terminate()
    try:
        ret = salt_run_cli.run("state.orchestrate", "energy.orch")
        assert ret.returncode != 0
        (step_id,) = failed_steps(ret.data)  # only the step naming the minion that is down failed
        assert step_id.startswith("test_|-energy-orch-minions-answer-fail_|-")
        step_name = step_id.split("_|-")[2]
        assert step_name.startswith("minion(s) test-node-c did not answer")
        assert "test-node-b" not in step_name and "test-ctl" not in step_name
        # the rest of the stack is deployed
        assert running(docker_engine, energy_component="formula", energy_cpu=EPYC)
        assert running(docker_engine, energy_component="sensor", energy_minion="test-node-b")
        # the health checks (energy.heal) went with the services phase to those who answered
        (services,) = [step for steps in ret.data.get("data", ret.data).values() for sid, step in steps.items()
                       if "energy-services-deploy-orch" in sid]
        node_b = services["changes"]["ret"]["test-node-b"]  # its sensor was recreated: a change
        assert any("energy-heal-node-kept" in sid for sid in node_b), sorted(node_b)
        assert any("energy-sensor-health-healthy" in sid for sid in node_b), sorted(node_b)
    finally:
        node_c.start(start_timeout=120)
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode == 0, failed_steps(ret.data)


def container_ids(docker_engine):
    return sorted(c.id for m in MINIONS for c in docker_engine.containers.list(
        all=True, filters={"label": f"energy.minion={m}"}, ignore_removed=True))


def test_bad_pillar_fails_before_any_container_is_touched(deployed, salt_run_cli, salt_cli, docker_engine,
                                                          pillar_tree, pillar):
    before = container_ids(docker_engine)
    with pillar_changed(salt_cli, pillar_tree, pillar, lambda energy: energy["mongo"].update(port=70000)):
        ret = salt_run_cli.run("state.orchestrate", "energy.orch")
        assert ret.returncode != 0
        failed = failed_steps(ret.data)
        # the plan is computed and checked on the master, before any minion is asked
        assert list(failed) == ["salt_|-energy-orch-plan-prepare-runner_|-energy_plan.prepare_|-runner"]
        text = str(ret.data)
        assert "energy:mongo:port: bad value 70000" in text and "1024 to 65535" in text
        assert "energy-databases-deploy-orch" not in text  # no deploy phase ran
        assert container_ids(docker_engine) == before


def test_a_pillar_file_salt_cannot_render_stops_everything_with_salts_error(deployed, salt_run_cli, salt_cli,
                                                                            docker_engine, pillar_tree, pillar):
    """A duplicate key in one pillar file: Salt renders the others and lists the failure under
    _errors. The orch and energy.config stop with it; no container is touched; no secret shown."""
    before = container_ids(docker_engine)
    (pillar_tree / "top.sls").write_text("base:\n  '*':\n    - energy\n    - energy_broken\n")
    (pillar_tree / "energy_broken.sls").write_text(
        f"energy:\n  grafana:\n    admin_password: {GRAFANA_PASSWORD}-x\n  mongo: {{port: 27017}}\n  mongo: {{port: 27018}}\n")
    try:
        salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")
        ret = salt_run_cli.run("state.orchestrate", "energy.orch")
        # Salt refuses an orchestrate whose master pillar did not render before orch_targets.jinja
        # would (its check covers a pillar.get that sees the errors: tests/functional/test_hostile_render.py)
        assert ret.returncode != 0
        assert "Rendering SLS 'energy_broken' failed" in str(ret.data)
        config = salt_cli.run("energy.config", minion_tgt="test-node-a")
        text = str(config.data) + config.stdout
        assert "pillar:_errors: bad value" in text and "Rendering SLS 'energy_broken' failed" in text
        assert f"{GRAFANA_PASSWORD}-x" not in text
        assert container_ids(docker_engine) == before
    finally:
        (pillar_tree / "energy_broken.sls").unlink()
        write_pillar(pillar_tree, pillar)
        salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")


def mongo_address(minion, port=27017):
    return f"{MINIONS[minion][0]}:{port}"


def test_mongodb_authenticates_and_each_user_has_only_its_rights(deployed):
    address, database = mongo_address("test-node-a"), "sensors_intel_xeon_e5_2630_v3"
    # without credentials: a ping, nothing else
    assert mongo_wire.command(address, "admin", {"ping": 1})["ok"] == 1
    refused = mongo_wire.command(address, database, {"count": "hwpc"})
    assert refused["ok"] == 0 and refused["code"] == 13
    (sensor_user, sensor_pw), (formula_user, formula_pw) = (mongo_user(p, "intel_xeon_e5_2630_v3")
                                                            for p in ("sensor", "formula"))
    sensor, formula = {"user": sensor_user, "password": sensor_pw}, {"user": formula_user, "password": formula_pw}
    for password in ("not-the-password", MONGO_PASSWORDS["sensor_password"]):  # the role's password is no user's
        with pytest.raises(mongo_wire.CommandError) as exc:
            mongo_wire.command(address, "admin", {"ping": 1}, user=sensor_user, password=password)
        assert exc.value.code == 18
    with pytest.raises(mongo_wire.CommandError) as exc:  # a CPU name's users live in its MongoDB only
        mongo_wire.command(mongo_address("test-ctl"), "admin", {"ping": 1}, **sensor)
    assert exc.value.code == 18
    # the sensor user cannot read reports (it adds them: test_e2e_power); the formula user reads
    # and removes them, and cannot add any
    assert mongo_wire.command(address, database, {"count": "hwpc"}, **sensor)["code"] == 13
    assert mongo_wire.command(address, database, {"count": "hwpc"}, **formula)["ok"] == 1
    assert mongo_wire.command(address, database, {"insert": "hwpc", "documents": [{"x": 1}]}, **formula)["code"] == 13
    # neither reaches another CPU name's database
    other = mongo_wire.command(address, "sensors_amd_epyc_7452", {"insert": "hwpc", "documents": [{"x": 1}]}, **sensor)
    assert other["code"] == 13
    assert mongo_wire.command(address, "sensors_amd_epyc_7452", {"count": "hwpc"}, **formula)["code"] == 13
    # what each role grants, read back as energy-admin: its own collection, nothing else; no other
    # user of the stack (the stand-in checks rights per database only: README, images)
    admin = {"user": "energy-admin", "password": MONGO_PASSWORDS["admin_password"]}
    roles = mongo_wire.command(address, "admin", {"rolesInfo": 1, "showPrivileges": True}, **admin)["roles"]
    assert {r["role"]: [(p["resource"]["db"], p["resource"]["collection"], sorted(p["actions"]))
                        for p in r["privileges"]] for r in roles} == {
        sensor_user: [(database, "hwpc", ["insert"])], formula_user: [(database, "hwpc", ["find", "remove", "update"])]}
    users = mongo_wire.command(address, "admin", {"usersInfo": 1}, **admin)["users"]
    assert sorted(u["user"] for u in users) == ["energy-admin", formula_user, sensor_user]


def test_a_missing_secret_fails_only_the_minions_that_need_it_before_any_container(
        deployed, salt_run_cli, salt_cli, docker_engine, pillar_tree, pillar):
    before = container_ids(docker_engine)
    with pillar_changed(salt_cli, pillar_tree, pillar, lambda energy: energy["mongo"].update(formula_password="")):
        ret = salt_run_cli.run("state.orchestrate", "energy.orch")
        assert ret.returncode != 0
        assert list(failed_steps(ret.data)) == ["salt_|-energy-orch-plan-check-function_|-energy.check_|-function"]
        text = str(ret.data)
        # test-ctl runs the formulas and two MongoDBs, test-node-a a MongoDB; the others need no formula password
        for minion in ("test-ctl", "test-node-a"):
            assert f"energy:mongo:formula_password: missing on {minion}" in text
        for minion in ("test-node-b", "test-node-c"):
            assert f"missing on {minion}" not in text
        assert "energy-databases-deploy-orch" not in text
        assert container_ids(docker_engine) == before


def test_clean_removes_containers_in_reverse_order_and_keeps_data(deployed, salt_run_cli, docker_engine):
    volumes_before = sorted(v.name for v in docker_engine.volumes.list() if v.name.startswith("energy-test-ctl-mongo-"))
    assert volumes_before
    ret = salt_run_cli.run("state.orchestrate", "energy.clean_orch")
    assert ret.returncode == 0, failed_steps(ret.data)
    assert container_ids(docker_engine) == []
    volumes_after = sorted(v.name for v in docker_engine.volumes.list() if v.name.startswith("energy-test-ctl-mongo-"))
    assert volumes_after == volumes_before  # energy:clean:purge_data is false
    # the stack's network went with the last container that used it
    assert docker_engine.networks.list(names=[TEST_NETWORK]) == []
    # and the stack comes back on the kept volumes
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode == 0, failed_steps(ret.data)
    assert len(running(docker_engine, energy_component="formula")) == 3
    assert [n.name for n in docker_engine.networks.list(names=[TEST_NETWORK])] == [TEST_NETWORK]


def orch_fails_at(salt_run_cli, phase):
    """Run the orch; it must fail at deploy phase ``phase`` (databases, services) and nowhere else.
    Returns the run and the failed step's comments."""
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode != 0
    failed = failed_steps(ret.data)
    assert list(failed) == [f"salt_|-energy-{phase}-deploy-orch_|-energy-{phase}-deploy-orch_|-state"]
    return ret, " ".join(str(c) for c in failed.values())


def test_misconfigured_influxdb_fails_its_phase_naming_service_and_minion(deployed, salt_run_cli, salt_cli,
                                                                         docker_engine, pillar_tree, pillar):
    plan = salt_cli.run("energy.plan", minion_tgt="test-ctl").data
    gold = plan["cpus"][XEON_GOLD]
    count_query = "SELECT count(power) FROM power_consumption"
    stored = influx(gold["influxdb_url"], gold["influxdb_database"], count_query)[0]["values"][0][1]

    def never_answering_influxdb(energy):
        energy["ready_timeout"] = 5
        # influxd serves HTTP on another port inside the container: the published one never answers
        energy["influxdb"]["env"] = {"INFLUXDB_HTTP_BIND_ADDRESS": ":9999"}

    with pillar_changed(salt_cli, pillar_tree, pillar, never_answering_influxdb):
        ret, comments = orch_fails_at(salt_run_cli, "databases")
        assert f"influxdb for {XEON_GOLD} on test-ctl" in comments
        assert "energy-services-deploy-orch" not in str(ret.data)  # the phase after it did not run
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode == 0, failed_steps(ret.data)
    # the recreated InfluxDB found its volume: nothing stored before the failure is lost
    after = influx(gold["influxdb_url"], gold["influxdb_database"], count_query)[0]["values"][0][1]
    assert after >= stored


def test_a_sensor_that_refuses_an_event_fails_its_phase_naming_minion_event_and_fix(deployed, salt_run_cli, salt_cli,
                                                                                   docker_engine, pillar_tree, pillar):
    # energy:sensor:events replaces the detected events unchecked ("for users who know better"): the
    # sensor itself refuses what the machine cannot count, as hwpc-sensor does, and exits
    def bogus_event(energy):
        energy["sensor"]["events"] = {EPYC: ["CYCLES_NOT_IN_HALT", "NOT_AN_EVENT"]}

    with pillar_changed(salt_cli, pillar_tree, pillar, bogus_event):
        _, comments = orch_fails_at(salt_run_cli, "services")
        assert "the hwpc-sensor on test-node-b refused its config" in comments
        assert "'NOT_AN_EVENT' (group core)" in comments and "Fix: remove 'NOT_AN_EVENT'" in comments
        (sensor,) = containers(docker_engine, energy_component="sensor", energy_minion="test-node-b")
        assert sensor.status == "exited"  # stopped, not left restarting
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode == 0, failed_steps(ret.data)
    assert running(docker_engine, energy_component="sensor", energy_minion="test-node-b")
