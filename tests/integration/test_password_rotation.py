"""A MongoDB password changed in pillar reaches MongoDB and the sensors without leaving the old or
the new password in a return, the master's job cache or a log; the shared MongoDB users of an
earlier layout are dropped on the next run (test mode first saying so), their reports kept.

Both tests put the stack back as the session's deployment left it: the tests after them see the
pillar's passwords and the per-CPU users."""

import json
import pathlib
import time
import urllib.parse

import pytest

from energy_core import mongo_wire
from tests.integration.conftest import MINIONS, MONGO_PASSWORDS, failed_steps, mongo_user, pillar_changed, \
    state_changes

E5 = "intel_xeon_e5_2630_v3"  # sensor test-node-c, MongoDB on test-node-a
DATABASE = f"sensors_{E5}"
NEW_SENSOR_PASSWORD = "rotated-sensor-pw-7"
ADMIN = {"user": "energy-admin", "password": MONGO_PASSWORDS["admin_password"]}


def address(minion="test-node-a", port=27017):
    return f"{MINIONS[minion][0]}:{port}"


def logs_in(user, password):
    try:
        return mongo_wire.command(address(), "admin", {"ping": 1}, user=user, password=password)["ok"] == 1
    except mongo_wire.CommandError as exc:
        if exc.code == 18:
            return False
        raise


def written_since(root, since):
    """The text of every file under ``root`` written since ``since`` (job cache files are msgpack:
    their strings are there as UTF-8 bytes)."""
    return [p.read_bytes().decode("utf-8", "replace") for p in pathlib.Path(root).rglob("*")
            if p.is_file() and p.stat().st_mtime >= since]


def orch(salt_run_cli, outputs):
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    outputs.append(ret.stdout + json.dumps(ret.data, default=str))
    assert ret.returncode == 0, failed_steps(ret.data) if isinstance(ret.data, dict) else ret.stdout
    return state_changes(ret.data)


def serialize(salt_cli, path, value):
    """A file written by file.serialize with its default diff, on test-node-c."""
    ret = salt_cli.run("state.single", "file.serialize", f"name={path}", "serializer=json",
                       f'dataset={{"password": "{value}"}}', minion_tgt="test-node-c")
    assert ret.returncode == 0, ret.stdout


def test_a_changed_password_is_in_no_return_job_cache_or_log(
        deployed, salt_run_cli, salt_cli, salt_master, salt_minions, pillar_tree, pillar, config_dir, tmp_path):
    user, old = mongo_user("sensor", E5)
    _, new = mongo_user("sensor", E5, NEW_SENSOR_PASSWORD)
    secrets = {MONGO_PASSWORDS["sensor_password"], NEW_SENSOR_PASSWORD, old, new}
    secrets |= {urllib.parse.quote(s, safe="") for s in secrets}
    logs = [pathlib.Path(f.config["log_file"]) for f in salt_minions.values()]
    logs.append(pathlib.Path(salt_master.config["log_file"]))
    offsets = {log: log.stat().st_size for log in logs}
    started, outputs = time.time() - 1, []
    # the control: a file changed with Salt's default diff puts both values where this test looks
    canaries = ["canary-before-4711", "canary-after-4711"]
    for value in canaries:
        serialize(salt_cli, tmp_path / "canary.json", value)
    with pillar_changed(salt_cli, pillar_tree, pillar,
                        lambda energy: energy["mongo"].update(sensor_password=NEW_SENSOR_PASSWORD)):
        changes = orch(salt_run_cli, outputs)
        # every sensor's config changed, and its state says so without a diff
        files = {sid.split(":")[0]: c for sid, c in changes.items() if "_|-energy-sensor-file-managed-" in sid}
        assert sorted(files) == sorted(MINIONS), sorted(changes)
        assert all(c == {"diff": "<show_changes=False>"} for c in files.values()), files
        users = [c for sid, c in changes.items() if sid.startswith("test-node-a:") and "energy-mongo-users-present" in sid]
        assert users == [{user: ["password set from pillar"]}]
        # the new password works, the old one no more, and the sensor's config has the new one
        assert logs_in(user, new) and not logs_in(user, old)
        config = json.loads((config_dir / "energy-test-node-c-sensor.json").read_text())
        assert f"{user}:{new}@" in config["output"]["uri"]
    # the pillar's password again: the stack as the session's deployment left it
    orch(salt_run_cli, outputs)
    assert logs_in(user, old) and not logs_in(user, new)
    jobs = written_since(pathlib.Path(salt_master.config["cachedir"]) / "jobs", started)
    written = {}
    for log in logs:
        with log.open("rb") as handle:
            handle.seek(offsets[log])
            written[log] = handle.read().decode("utf-8", "replace")
    # the search sees what a diff leaks: both canaries in the job cache and in test-node-c's log
    node_c = written[pathlib.Path(salt_minions["test-node-c"].config["log_file"])]
    assert all(any(c in t for t in jobs) and c in node_c for c in canaries)
    texts = outputs + jobs + list(written.values())
    found = sorted({s for s in secrets for t in texts if s in t})
    assert not found, f"{len(found)} password(s) found"  # not the values themselves: this goes to CI logs


def test_the_shared_users_of_an_earlier_layout_are_dropped_and_their_reports_kept(deployed, salt_cli):
    earlier = {"energy-sensor": ["insert"], "energy-formula": ["find", "remove", "update"]}
    for name, actions in earlier.items():  # as the formula made them before: rights on the whole database
        mongo_wire.command(address(), "admin", {"createRole": name, "roles": [], "privileges": [
            {"resource": {"db": DATABASE, "collection": ""}, "actions": actions}]}, **ADMIN)
        mongo_wire.command(address(), "admin", {"createUser": name, "pwd": f"{name}-earlier-pw", "mechanisms": [
            "SCRAM-SHA-256"], "roles": [{"role": name, "db": "admin"}]}, **ADMIN)
    kept = mongo_wire.command(address(), DATABASE, {"insert": "hwpc_earlier", "documents": [{"earlier": 1}]},
                              user="energy-sensor", password="energy-sensor-earlier-pw")
    assert kept["n"] == 1
    try:
        ret = salt_cli.run("state.apply", "energy.mongo", "test=True", minion_tgt="test-node-a")
        (state,) = [r for sid, r in ret.data.items() if "energy-mongo-users-present" in sid]
        assert state["result"] is None and state["changes"] == {
            name: ["user removed (the plan no longer has it)", "role removed (the plan no longer has it)"]
            for name in earlier}
        assert logs_in("energy-sensor", "energy-sensor-earlier-pw")  # test mode changed nothing
        ret = salt_cli.run("state.apply", "energy.mongo", minion_tgt="test-node-a")
        (state,) = [r for sid, r in ret.data.items() if "energy-mongo-users-present" in sid]
        assert state["result"] is True and sorted(state["changes"]) == sorted(earlier)
        assert not logs_in("energy-sensor", "energy-sensor-earlier-pw")
        roles = mongo_wire.command(address(), "admin", {"rolesInfo": 1}, **ADMIN)["roles"]
        assert sorted(r["role"] for r in roles) == sorted(mongo_user(p, E5)[0] for p in ("formula", "sensor"))
        # what the earlier user wrote is still there
        assert mongo_wire.command(address(), DATABASE, {"count": "hwpc_earlier"}, **ADMIN)["n"] == 1
        ret = salt_cli.run("state.apply", "energy.mongo", minion_tgt="test-node-a")
        (state,) = [r for sid, r in ret.data.items() if "energy-mongo-users-present" in sid]
        assert state["result"] is True and state["changes"] == {}
    finally:
        mongo_wire.command(address(), DATABASE, {"drop": "hwpc_earlier"}, **ADMIN)
        for name in earlier:
            mongo_wire.command(address(), "admin", {"dropUser": name}, **ADMIN)
            mongo_wire.command(address(), "admin", {"dropRole": name}, **ADMIN)


@pytest.fixture(autouse=True)
def _users_as_planned_after(deployed):
    """Each test leaves test-node-a's MongoDB with only the plan's users (checked, not assumed)."""
    yield
    users = mongo_wire.command(address(), "admin", {"usersInfo": 1}, **ADMIN)["users"]
    assert sorted(u["user"] for u in users) == sorted(["energy-admin"] + [mongo_user(p, E5)[0]
                                                                          for p in ("formula", "sensor")])
