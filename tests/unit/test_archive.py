"""Backups, restores and exports, the pure parts: time bounds, the manifest check that refuses a
foreign or damaged backup before anything is written, and the export's rows."""

import json
import os

import pytest

from energy_core import archive
from energy_core.archive import ArchiveError

NOW = 1_800_000_000.0


@pytest.mark.parametrize("value, expected", [
    ("2026-11-26T10:00:00Z", 1795687200 * 10**9),
    ("2026-11-26T11:00:00+01:00", 1795687200 * 10**9),
    ("2026-11-26T10:00:00.5Z", 1795687200 * 10**9 + 500_000_000),
    (1795687200, 1795687200 * 10**9),
    ("2h", int((NOW - 7200) * 1e9)),
    (None, None),
])
def test_times_are_nanoseconds_from_rfc3339_epoch_seconds_or_a_duration_before_now(value, expected):
    assert archive.parse_time(value, NOW, "since") == expected


def test_a_bad_time_names_its_key_and_the_forms_it_takes():
    with pytest.raises(ArchiveError, match=r"until: bad value 'yesterday'.*2026-11-26T10:00:00Z"):
        archive.parse_time("yesterday", NOW, "until")


def test_rfc3339_round_trips_and_the_time_filter_uses_nanoseconds():
    assert archive.parse_time(archive.rfc3339(1795687200123456789), NOW, "x") == 1795687200123456789
    assert archive.time_filter(1, None) == " WHERE time >= 1"
    assert archive.time_filter(1, 2) == " WHERE time >= 1 AND time < 2"
    assert archive.time_filter(None, None) == ""


def backup_dir(tmp_path, content=b"influxd backup bytes"):
    (tmp_path / "a.tar.gz").write_bytes(content)
    entry = {"kind": "influxdb", "cpu": "Gold", "database": "power_gold", "host": "ctl", "file": "a.tar.gz",
             "size": len(content), "sha256": archive.sha256_of(tmp_path / "a.tar.gz"), "points": {"p": 3}}
    (tmp_path / archive.MANIFEST).write_text(json.dumps(archive.manifest([entry], None, 10**18, "per_cpu", 1.0, NOW)))
    return tmp_path


def test_an_intact_backup_checks_out(tmp_path):
    found = archive.check(str(backup_dir(tmp_path)))
    assert found["entries"][0]["database"] == "power_gold" and found["until"] == "2001-09-09T01:46:40Z"


def test_a_damaged_archive_is_refused_naming_it(tmp_path):
    backup_dir(tmp_path)
    (tmp_path / "a.tar.gz").write_bytes(b"influxd backup bytez")  # same size, one byte differs
    with pytest.raises(ArchiveError, match=r"(?s)nothing was restored.*a.tar.gz: SHA-256 differs"):
        archive.check(str(tmp_path))


def test_a_foreign_or_truncated_manifest_is_refused(tmp_path):
    backup_dir(tmp_path)
    (tmp_path / archive.MANIFEST).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ArchiveError, match="not an energy backup"):
        archive.check(str(tmp_path))
    (tmp_path / archive.MANIFEST).write_text("{")
    with pytest.raises(ArchiveError, match="not JSON"):
        archive.check(str(tmp_path))
    with pytest.raises(ArchiveError, match="not a directory"):
        archive.check(str(tmp_path / "nowhere"))


def test_a_manifest_cannot_point_outside_its_directory(tmp_path):
    backup_dir(tmp_path)
    manifest = json.loads((tmp_path / archive.MANIFEST).read_text())
    manifest["entries"][0]["file"] = "../../etc/shadow"
    (tmp_path / archive.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArchiveError, match="not a plain relative path"):
        archive.check(str(tmp_path))
    assert os.path.exists(tmp_path / "a.tar.gz")


def series(tags, *rows):
    return {"name": "power_consumption", "tags": tags, "columns": ["time", "power"], "values": [list(r) for r in rows]}


def test_csv_rows_sum_the_sockets_of_one_time_across_chunks():
    rows = archive.CsvRows("Gold")
    a = {"sensor": "ctl", "target": "app", "scope": "cpu"}
    out = list(rows.feed(series(a, (10**9, 1.5), (10**9, 2.0))))  # two sockets, same time
    out += list(rows.feed(series(a, (2 * 10**9, 3.0))))  # the series goes on in the next chunk
    out += list(rows.feed(series(dict(a, target="db"), (2 * 10**9, 4.0))))
    out += list(rows.flush())
    assert out == [("1970-01-01T00:00:01Z", "ctl", "Gold", "app", "cpu", "3.5"),
                   ("1970-01-01T00:00:02Z", "ctl", "Gold", "app", "cpu", "3.0"),
                   ("1970-01-01T00:00:02Z", "ctl", "Gold", "db", "cpu", "4.0")]


def test_line_protocol_keeps_field_types_and_escapes_tags():
    one = {"name": "power_consumption", "tags": {"target": "my app,1", "scope": "cpu", "socket": ""},
           "columns": ["time", "power", "n", "note"], "values": [[5, 2.0, 3, 'say "hi"']]}
    (line,) = archive.line_protocol(one, {"power": "float", "n": "integer", "note": "string"})
    assert line == 'power_consumption,scope=cpu,target=my\\ app\\,1 power=2.0,n=3i,note="say \\"hi\\"" 5'


def test_a_restore_waits_for_each_measurement_of_the_manifest():
    entry = {"points": {"power_consumption": 10, "energy_health": 2, "bad": "x", "flag": True}}
    expected = archive.points_of(entry["points"])
    assert expected == {"power_consumption": 10, "energy_health": 2}
    assert archive.points_of(None) == {} and archive.points_of([1]) == {}
    assert archive.shortfall(expected, {}) == {"energy_health": (0, 2), "power_consumption": (0, 10)}
    assert archive.shortfall(expected, {"power_consumption": 10, "energy_health": 1}) == {"energy_health": (1, 2)}
    assert archive.shortfall(expected, {"power_consumption": 11, "energy_health": 2, "other": 1}) == {}


def _facts(**differences):
    boxes = {"energy-a-formula-x": {"component": "formula", "cpu": "X", "minion": "a", "state": "running"},
             "energy-b-formula-y": {"component": "formula", "cpu": "Y", "minion": "b", "state": "exited"},
             "energy-c-influxdb-x": {"component": "influxdb", "cpu": "X", "minion": "c", "state": "running"},
             "energy-c-influxdb-y": {"component": "influxdb", "cpu": "Y", "minion": "c", "state": "running"}}
    edges = [("energy-a-formula-x", "energy-c-influxdb-x", "power_x"),
             ("energy-b-formula-y", "energy-c-influxdb-y", "power_y")]
    return {"boxes": boxes, "edges": edges, "cpus": ["X", "Y"],
            "differences": dict({"errors": {}, "no_answer": []}, **differences)}


def test_what_to_back_up_restore_or_export_comes_from_the_plan_and_is_refused_without_one():
    assert archive.targets_of(_facts(), "Y") == [("Y", ("c", "energy-c-influxdb-y", "power_y"))]
    assert len(archive.backup_targets(_facts(), None)) == 2
    with pytest.raises(ArchiveError, match="^no plan to back up: invalid energy pillar"):
        archive.backup_targets(_facts(errors={"plan": "invalid energy pillar"}), None)
    with pytest.raises(ArchiveError, match="^minion c holds an InfluxDB to back up and did not answer"):
        archive.backup_targets(_facts(no_answer=["c"]), "X")
    with pytest.raises(ArchiveError, match="^no plan to export from: x"):
        archive.planned(_facts(errors={"plan": "x"}), "export from")


def test_a_backup_range_ends_now_by_default_and_starts_before_it_ends():
    assert archive.backup_range(None, None, 100.0) == (None, 100 * 10**9)
    assert archive.backup_range("10", "20", 100.0) == (10 * 10**9, 20 * 10**9)
    with pytest.raises(ArchiveError, match="^since: bad value '20': it is not before until"):
        archive.backup_range("20", "10", 100.0)


def test_a_restore_stops_the_running_formulas_of_its_cpu_names_only_when_asked():
    assert archive.formulas_to_stop(_facts(), ["Y"], False) == []  # exited
    assert archive.formulas_to_stop(_facts(), ["X", "Y"], True) == ["energy-a-formula-x"]
    with pytest.raises(ArchiveError, match="^SmartWatts energy-a-formula-x is running .* salt a docker.stop"):
        archive.formulas_to_stop(_facts(), ["X"], False)
