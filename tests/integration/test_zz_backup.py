"""Operate the stack: the deployment summary from the live containers, and the round trip of the
measurements (backup, purge, deploy again, restore) on the real InfluxDB with real SmartWatts
output; bad input to each runner is a clear error and loses nothing.

Runs after the reactor tests and before the fault tests (hence its name): it purges the whole test
stack and deploys it again."""

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from energy_core import archive
from tests.power import influx
from tests.integration.conftest import MINIONS, containers, failed_steps, pillar_changed, settled


def series_digests(info, until_ns):
    """{series key: (points, sha256 of its (time, power) rows)} of a CPU name's database before ``until_ns``."""
    params = urllib.parse.urlencode({"db": info["influxdb_database"], "epoch": "ns",
                                     "q": f"SELECT * FROM power_consumption WHERE time < {until_ns} GROUP BY *"})
    with urllib.request.urlopen(f"{info['influxdb_url']}/query?{params}", timeout=60) as resp:
        result = json.load(resp)["results"][0]
    found = {}
    for series in result.get("series") or []:
        key = json.dumps(series.get("tags"), sort_keys=True)
        rows = json.dumps(series["values"]).encode()
        found[key] = (len(series["values"]), hashlib.sha256(rows).hexdigest())
    return found


def run(salt_run_cli, *args):
    ret = salt_run_cli.run(*args)
    return ret, ret.data if isinstance(ret.data, dict) else {}


def influx_volumes(docker_engine):
    return sorted(v.name for v in docker_engine.volumes.list() if v.name.startswith("energy-test-")
                  and "-influxdb" in v.name)


@pytest.fixture
def stray(docker_engine, images_built):
    """A container with the stack's labels that no plan has."""
    container = docker_engine.containers.run(
        images_built["python"], ["sleep", "900"], name="energy-test-node-c-sensor-stray", detach=True,
        labels={"energy.minion": "test-node-c", "energy.component": "sensor"})
    yield container.name
    container.remove(force=True)


def test_the_summary_shows_what_runs_where_and_what_differs_from_the_plan(deployed, plan, salt_run_cli, stray,
                                                                          docker_engine, tmp_path):
    settled(docker_engine)
    ret, facts = run(salt_run_cli, "energy.summary", "format=json")
    assert ret.returncode == 0, ret.stdout
    planned = {c["name"]: minion for minion, host in plan["hosts"].items() for c in host["containers"]}
    assert set(planned) == set(facts["boxes"])
    for name, box in facts["boxes"].items():
        assert box["state"] == "running", (name, box)
        assert box["minion"] == planned[name]
    influx = [b for b in facts["boxes"].values() if b["component"] == "influxdb"]
    assert influx and all(b["volume_bytes"] > 0 for b in influx)  # the volumes hold data
    assert facts["differences"]["unplanned"] == [{"minion": "test-node-c", "name": stray, "component": "sensor",
                                                  "state": "running"}]
    assert not facts["differences"]["missing"] and not facts["differences"]["no_answer"]
    # every sensor feeds the MongoDB its CPU name's SmartWatts reads
    for info in plan["cpus"].values():
        for sensor in info["sensors"]:
            (edge,) = [e for e in facts["edges"] if e[0] == f"energy-{sensor}-sensor"]
            assert facts["boxes"][edge[1]]["minion"] == info["mongo"]
    # as text (the default) and as an SVG picture of the same boxes
    picture = tmp_path / "topology.svg"
    ret = salt_run_cli.run("energy.summary", "format=svg", f"path={picture}", "--out=txt")
    assert ret.returncode == 0, ret.stdout
    assert "Topology (reports flow left to right)" in ret.stdout and f"unplanned: {stray} on test-node-c" in ret.stdout
    titles = [t.text for t in ET.parse(picture).getroot().iter("{http://www.w3.org/2000/svg}title")]
    assert set(facts["boxes"]) <= set(titles)


def test_bad_backup_input_is_a_clear_error_and_writes_nothing(deployed, salt_run_cli, tmp_path):
    ret, data = run(salt_run_cli, "energy.backup", f"dest={tmp_path / 'nowhere'}")
    assert ret.returncode != 0 and "dest: bad value" in data["error"] and "mkdir -p" in data["error"]
    ret, data = run(salt_run_cli, "energy.backup", f"dest={tmp_path}", "cpus=Imaginary CPU 9000")
    assert ret.returncode != 0 and "cpus: bad value 'Imaginary CPU 9000'" in data["error"]
    ret, data = run(salt_run_cli, "energy.backup", f"dest={tmp_path}", "since=sometime")
    assert ret.returncode != 0 and "since: bad value 'sometime'" in data["error"]
    assert os.listdir(tmp_path) == []
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(small)], check=True)
    try:
        ret, data = run(salt_run_cli, "energy.backup", f"dest={small}")
        assert ret.returncode != 0 and "no space" in data["error"], data
        assert os.listdir(small) == []  # no half backup that looks whole
    finally:
        subprocess.run(["umount", str(small)], check=True)


@pytest.fixture(scope="module")
def backup(deployed, plan, workloads, salt_run_cli, tmp_path_factory):
    """A backup of every CPU name up to now, an export of the same range, and the digests of each series."""
    deadline = time.time() + 120  # the workload containers' power is in every database first
    while time.time() < deadline and not all(
            set(workloads) <= {s["tags"]["target"] for s in influx(
                info["influxdb_url"], info["influxdb_database"],
                "SELECT count(power) FROM power_consumption WHERE time < now() - 30s GROUP BY target")}
            for info in plan["cpus"].values()):
        time.sleep(3)
    # SmartWatts writes a point some seconds after its time, more while a formula catches up on a
    # backlog (one an earlier module recreated): the range is settled when nothing in it changed
    # while the backup ran
    def digests_until(until_ns):
        return {cpu: series_digests(info, until_ns) for cpu, info in plan["cpus"].items()}

    for _ in range(4):
        dest = tmp_path_factory.mktemp("backups")
        until = time.time() - 30
        until_ns = int(until * 1e9)
        digests = digests_until(until_ns)
        ret, data = run(salt_run_cli, "energy.backup", f"dest={dest}", f"until={until}")
        assert ret.returncode == 0, ret.stdout
        if digests == digests_until(until_ns):
            break
        time.sleep(15)
    else:
        pytest.fail("points older than 30 s kept coming while four backups ran: a formula is far behind")
    exported = tmp_path_factory.mktemp("export-before")
    ret, _ = run(salt_run_cli, "energy.export", f"dest={exported}", f"until={until}")
    assert ret.returncode == 0, ret.stdout
    return {"dir": data["backup"], "until_ns": until_ns, "digests": digests, "export": exported}


def test_a_backup_has_a_checked_manifest_of_every_database(backup, plan):
    with open(os.path.join(backup["dir"], "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    assert sorted(e["cpu"] for e in manifest["entries"]) == sorted(plan["cpus"])
    for entry in manifest["entries"]:
        info = plan["cpus"][entry["cpu"]]
        assert (entry["host"], entry["database"]) == (info["influxdb"], info["influxdb_database"])
        points = sum(n for n, _ in backup["digests"][entry["cpu"]].values())
        assert entry["points"]["power_consumption"] == points > 0
        path = os.path.join(backup["dir"], entry["file"])
        assert os.path.getsize(path) == entry["size"]
        assert hashlib.sha256(open(path, "rb").read()).hexdigest() == entry["sha256"]
        with tarfile.open(path) as tar:  # influxd backup -portable's files
            assert any(n.endswith(".manifest") for n in tar.getnames())
        assert entry["seconds"] >= 0
        assert archive.parse_time(entry["last"], 0, "last") < archive.parse_time(manifest["until"], 0, "until")


def test_the_export_has_a_csv_per_cpu_name_with_every_container(backup, plan, workloads):
    for info in plan["cpus"].values():
        path = backup["export"] / f"{info['influxdb_database']}.csv"
        lines = path.read_text().splitlines()
        assert lines[0] == "time,minion,cpu,container,scope,watts"
        rows = [line.split(",") for line in lines[1:]]
        assert rows and {r[1] for r in rows} == set(info["sensors"])
        assert {r[3] for r in rows} >= set(workloads) | {"rapl", "global"}
        assert all(float(r[5]) >= 0 for r in rows)


def test_a_damaged_or_foreign_backup_is_refused_before_anything_is_written(backup, plan, salt_run_cli, tmp_path):
    copy = tmp_path / "damaged"
    shutil.copytree(backup["dir"], copy)
    entry = json.loads((copy / "manifest.json").read_text())["entries"][0]
    data = bytearray((copy / entry["file"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / entry["file"]).write_bytes(bytes(data))
    info = plan["cpus"][entry["cpu"]]
    settled = time.time_ns() - 30 * 10**9  # SmartWatts writes a point some seconds after its time
    before = series_digests(info, settled)
    ret, out = run(salt_run_cli, "energy.restore", f"src={copy}", "stop_formulas=True")
    assert ret.returncode != 0 and "SHA-256 differs" in out["error"] and "nothing was restored" in out["error"]
    (copy / "manifest.json").write_text(json.dumps({"format": "tarball"}))
    ret, out = run(salt_run_cli, "energy.restore", f"src={copy}")
    assert ret.returncode != 0 and "not an energy backup" in out["error"]
    assert series_digests(info, settled) == before


def test_round_trip_backup_purge_deploy_restore_brings_every_point_back(
        backup, plan, salt_run_cli, salt_cli, docker_engine, pillar_tree, pillar, tmp_path):
    volumes = influx_volumes(docker_engine)
    with pillar_changed(salt_cli, pillar_tree, pillar, lambda conf: conf.update(clean={"purge_data": True})):
        ret = salt_run_cli.run("state.orchestrate", "energy.clean_orch")
        assert ret.returncode == 0, failed_steps(ret.data) if isinstance(ret.data, dict) else ret.stdout
    assert not set(volumes) & set(influx_volumes(docker_engine))  # the measurements are gone
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode == 0, failed_steps(ret.data) if isinstance(ret.data, dict) else ret.stdout
    until_ns = backup["until_ns"]
    for cpu, info in plan["cpus"].items():
        assert series_digests(info, until_ns) == {}, cpu  # a fresh database: nothing of before

    # a restore over running formulas is refused, and writes nothing
    ret, out = run(salt_run_cli, "energy.restore", f"src={backup['dir']}")
    assert ret.returncode != 0 and "is running" in out["error"] and "stop_formulas=True" in out["error"]
    assert all(series_digests(info, until_ns) == {} for info in plan["cpus"].values())

    ret, out = run(salt_run_cli, "energy.restore", f"src={backup['dir']}", "stop_formulas=True")
    assert ret.returncode == 0, ret.stdout
    for cpu, info in plan["cpus"].items():
        assert series_digests(info, until_ns) == backup["digests"][cpu], cpu  # every point, same values
    formulas = containers(docker_engine, all=False, energy_component="formula")
    assert len(formulas) == len(plan["groups"])  # started again after the restore
    maintenance = salt_cli.run("energy_heal.maintenance", minion_tgt="test-ctl").data
    assert not maintenance  # the restore's maintenance windows are over

    # restoring the same backup again merges: no duplicate, nothing changes
    ret, out = run(salt_run_cli, "energy.restore", f"src={backup['dir']}", "stop_formulas=True")
    assert ret.returncode == 0, ret.stdout
    for cpu, info in plan["cpus"].items():
        assert series_digests(info, until_ns) == backup["digests"][cpu], cpu

    # the export of the restored data is the export of the original
    exported = tmp_path / "export-after"
    exported.mkdir()
    ret, _ = run(salt_run_cli, "energy.export", f"dest={exported}", f"until={until_ns / 1e9}")
    assert ret.returncode == 0, ret.stdout
    for path in sorted(backup["export"].iterdir()):
        assert (exported / path.name).read_bytes() == path.read_bytes(), path.name
    assert set(MINIONS) <= {m for m in salt_cli.run("test.ping", minion_tgt="*").data}


def test_line_protocol_export_in_one_file_streams_the_raw_points(backup, plan, salt_run_cli, tmp_path):
    ret, data = run(salt_run_cli, "energy.export", f"dest={tmp_path}", "format=line", "per_cpu=False",
                    f"until={backup['until_ns'] / 1e9}")
    assert ret.returncode == 0, ret.stdout
    lines = (tmp_path / "power.lp").read_text().splitlines()
    total = sum(n for digests in backup["digests"].values() for n, _ in digests.values())
    assert len(lines) == total == data["rows"]
    assert all(line.startswith("power_consumption,") and " power=" in line for line in lines)
    assert not list(tmp_path.glob("*.gz"))  # the minion's compressed parts do not come along
