"""The master's runners through Salt's real runner loader, against hostile minions.

The plan is the master's own (``salt-run energy.plan``: defaults.yaml from its file server, its
pillar compiled from pillar_roots, the mine as its cache answers); only the minions are faked: what
``energy_inventory.live``, ``energy_archive.backup_influxdb`` and ``energy_archive.export_influxdb`` return (and what
``cp.push`` leaves in the master's cachedir) is written here by a hostile minion."""

import copy
import gzip
import hashlib
import json
import logging
import os
from unittest import mock

import pytest
import salt.config
import salt.loader
import yaml

from tests.conftest import ROOT, formula_file_root

XEON = "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"
FACTS = {"cpu_name": XEON, "cpu_vendor": "intel", "cpu_family": 6, "cpu_model": 85, "cpu_base_freq_mhz": 2100,
         "rapl_domains": ["dram", "package"], "virtual": False, "cgroup_version": 2,
         "pmu_events": ["CPU_CLK_THREAD_UNHALTED:REF_P", "CPU_CLK_THREAD_UNHALTED:THREAD_P", "LLC_MISSES",
                        "INSTRUCTIONS_RETIRED"]}
MINE = {"ctl": dict(FACTS, address="10.0.0.1"), "node-a": dict(FACTS, address="10.0.0.2")}
PILLAR = {"energy": {"control": "ctl", "grafana": {"admin_password": "functional-secret-1"},
                     "mongo": {"admin_password": "functional-mongo-1", "sensor_password": "functional-mongo-2",
                               "formula_password": "functional-mongo-3"}}}


class FakeRemoteFuncs:
    """The master's mine, as its cache answers ``mine.get`` (every target matches every minion)."""

    def __init__(self, opts):
        self.opts = opts
        self.mminion = None

    def _mine_get(self, load, skip_verify=False):  # pylint: disable=unused-argument
        return copy.deepcopy(MINE)

    def destroy(self):
        pass


@pytest.fixture
def master_opts(tmp_path):
    (tmp_path / "pillar").mkdir()
    (tmp_path / "pillar" / "top.sls").write_text(yaml.safe_dump({"base": {"*": ["energy"]}}))
    (tmp_path / "pillar" / "energy.sls").write_text(yaml.safe_dump(PILLAR))
    opts = salt.config.master_config(None)
    opts.update({
        "id": "func_master", "cachedir": str(tmp_path / "cache"), "pki_dir": str(tmp_path / "pki"),
        "sock_dir": str(tmp_path / "sock"), "runner_dirs": [str(ROOT / "_runners")], "file_recv": True,
        "file_roots": {"base": [str(formula_file_root(tmp_path / "srv"))]},
        "pillar_roots": {"base": [str(tmp_path / "pillar")]}, "fileserver_backend": ["roots"],
    })
    return opts


class Minions:
    """What the minions answer: ``live`` per minion, and a hostile ``answer(fun, kwarg)``."""

    def __init__(self, opts):
        self.opts = opts
        self.live = {m: {"minion": m, "containers": []} for m in MINE}
        self.asked = []
        self.answer = None

    def push(self, minion, upload, data):
        """What cp.push leaves on the master."""
        path = os.path.join(self.opts["cachedir"], "minions", minion, "files", upload)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)

    def ask(self, minions, fun, timeout, **kwarg):  # pylint: disable=unused-argument
        self.asked.append((tuple(minions), fun, kwarg))
        (minion,) = minions
        return {minion: self.answer(minion, fun, kwarg)}, {}

    def client(self):
        outer = self

        class Client:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def cmd(self, tgt, fun, **kwargs):  # pylint: disable=unused-argument
                assert fun == "energy_inventory.live"
                return {m: {"ret": live, "retcode": 0} for m, live in outer.live.items()}

        return Client()


@pytest.fixture
def runners(master_opts, caplog):
    caplog.set_level(logging.INFO)
    loaded = salt.loader.runner(master_opts, utils=salt.loader.utils(master_opts))
    minions = Minions(master_opts)
    with mock.patch("salt.daemons.masterapi.RemoteFuncs", FakeRemoteFuncs):
        with mock.patch.dict(loaded["energy_summary.summary"].func.__globals__, {"_client": minions.client}), \
                mock.patch.dict(loaded["energy_archive.export"].func.__globals__, {"_ask": minions.ask}):
            yield loaded, minions


def export_answer(minions, rows=2, lines=2, **extra):
    def answer(minion, fun, kwarg):
        assert fun == "energy_archive.export_influxdb"
        minions.push(minion, kwarg["upload"], gzip.compress(b"".join(b"1,%d\n" % i for i in range(lines))))
        return dict({"database": "/etc/passwd", "rows": rows, "bytes": 1, "seconds": 0.1}, **extra)
    return answer


def test_the_plan_is_the_masters_own_and_shows_no_secret(runners):
    loaded, _minions = runners
    plan = loaded["energy.plan"]()
    assert sorted(plan["hosts"]) == ["ctl", "node-a"]
    assert "functional-secret-1" not in json.dumps(plan) and "functional-mongo" not in json.dumps(plan)


def test_a_minions_topology_and_names_are_not_the_summarys(runners):
    loaded, minions = runners
    planned = {c for cs in loaded["energy.plan"]()["hosts"].values() for c in (x["name"] for x in cs["containers"])}
    mongo = next(n for n in planned if n.startswith("energy-ctl-mongo"))
    minions.live["node-a"] = {"containers": [
        {"name": mongo, "component": "mongo", "state": "running"},  # ctl's container, claimed by node-a
        {"name": "../../etc/passwd", "component": "mongo", "state": "running"},
        {"name": "energy-node-a-sensor", "component": "sensor", "state": "<b>pwned</b>", "volume_bytes": -3}],
        "topology": {"boxes": {"/abs/path": {"minion": "node-a"}}, "edges": [], "cpus": {}}}
    facts = loaded["energy.summary"](format="json")
    assert set(facts["boxes"]) == planned, sorted(planned)  # the plan's boxes, whatever a minion says
    assert facts["boxes"][mongo]["state"] == "missing"  # ctl itself did not report it
    assert facts["boxes"]["energy-node-a-sensor"]["state"] is None and facts["boxes"]["energy-node-a-sensor"][
        "volume_bytes"] is None
    assert {"minion": "node-a", "name": mongo, "component": "mongo", "state": "running"} in facts[
        "differences"]["unplanned"]


def test_export_writes_the_plans_file_names_only_inside_dest(runners, tmp_path):
    loaded, minions = runners
    dest = tmp_path / "exports"
    dest.mkdir()
    minions.answer = export_answer(minions)
    ret = loaded["energy.export"](dest=str(dest))
    assert ret["result"] is True, ret
    (database,) = {kwarg["database"] for _m, _f, kwarg in minions.asked}
    assert os.listdir(dest) == [f"{database}.csv"] and database.startswith("power_")
    assert (dest / f"{database}.csv").read_text().splitlines()[1:] == ["1,0", "1,1"]
    assert ret["files"] == {str(dest / f"{database}.csv"): 2}


def test_export_refuses_more_rows_than_arrived_naming_the_minion(runners, tmp_path, caplog):
    loaded, minions = runners
    minions.answer = export_answer(minions, rows=10**6)
    ret = loaded["energy.export"](dest=str(tmp_path))
    assert ret["result"] is False and "said 1000000 rows, 2 lines arrived" in ret["error"]
    (asked,) = minions.asked
    assert f"minion {asked[0][0]!r}" in ret["error"]
    assert any("said 1000000 rows" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


@pytest.mark.parametrize("bad", [{"rows": -1}, {"rows": "2; rm -rf /"}, {"rows": None}, {"seconds": "slow"}])
def test_export_refuses_a_malformed_answer(runners, tmp_path, bad):
    loaded, minions = runners
    minions.answer = export_answer(minions, **bad)
    (tmp_path / "dest").mkdir()
    ret = loaded["energy.export"](dest=str(tmp_path / "dest"))
    assert ret["result"] is False and ret["error"].startswith("minion ") and "energy_archive.export_influxdb returned" in ret[
        "error"]
    assert os.listdir(tmp_path / "dest") == []


@pytest.mark.parametrize("kind", ["file", "link", "dangling-link"])
def test_export_never_overwrites_nor_follows_what_is_in_dest(runners, tmp_path, kind):
    loaded, minions = runners
    minions.answer = export_answer(minions)
    database = loaded["energy.plan"]()["groups"][0]["influxdb_database"]
    dest, victim = tmp_path / "dest", tmp_path / "victim"
    dest.mkdir()
    victim.write_text("precious")
    target = dest / f"{database}.csv"
    if kind == "file":
        target.write_text("someone else's")
    else:
        target.symlink_to(victim if kind == "link" else tmp_path / "created-through-the-link")
    ret = loaded["energy.export"](dest=str(dest))
    assert ret["result"] is False and "exists" in ret["error"] and "never overwrites" in ret["error"]
    assert victim.read_text() == "precious" and not (tmp_path / "created-through-the-link").exists()
    if kind == "file":
        assert target.read_text() == "someone else's"


def backup_answer(minions, data=b"an influxd backup", **extra):
    def answer(minion, fun, kwarg):
        assert fun == "energy_archive.backup_influxdb"
        minions.push(minion, kwarg["upload"], data)
        return dict({"database": "../../x", "container": "/abs", "size": len(data),
                     "sha256": hashlib.sha256(data).hexdigest(), "points": {"power_consumption": 7},
                     "first": None, "last": None, "seconds": 0.5}, **extra)
    return answer


@pytest.fixture
def dest(tmp_path):
    (tmp_path / "dest").mkdir()
    return tmp_path / "dest"


def test_backup_keeps_what_the_master_measured_inside_its_directory(runners, tmp_path, dest):
    loaded, minions = runners
    minions.answer = backup_answer(minions)
    with mock.patch.dict(loaded["energy_archive.backup"].func.__globals__, {"_ask": minions.ask}):
        ret = loaded["energy.backup"](dest=str(tmp_path / "dest"))
    assert ret["result"] is True, ret
    (directory,) = os.listdir(tmp_path / "dest")
    directory = tmp_path / "dest" / directory
    manifest = json.loads((directory / "manifest.json").read_text())
    (entry,) = manifest["entries"]
    assert entry["database"].startswith("power_") and entry["host"] in MINE
    assert sorted(os.listdir(directory)) == sorted(["manifest.json", entry["file"]])
    assert entry["size"] == len(b"an influxd backup")


@pytest.mark.parametrize("bad, message", [
    ({"size": 5}, "energy_archive.backup_influxdb said 5 bytes, 17 arrived"),
    ({"sha256": "0" * 64}, "arrived damaged on the master"),
    ({"sha256": "../../etc/shadow"}, "returned sha256 = '../../etc/shadow': not a SHA-256"),
    ({"points": {"power_consumption": "lots"}}, "returned points[power_consumption] = 'lots': not a count"),
])
def test_backup_refuses_a_lying_minion_and_leaves_nothing(runners, tmp_path, dest, bad, message):
    loaded, minions = runners
    minions.answer = backup_answer(minions, **bad)
    with mock.patch.dict(loaded["energy_archive.backup"].func.__globals__, {"_ask": minions.ask}):
        ret = loaded["energy.backup"](dest=str(tmp_path / "dest"))
    assert ret["result"] is False and message in ret["error"], ret
    assert os.listdir(tmp_path / "dest") == []
