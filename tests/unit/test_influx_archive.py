"""energy_core.influx_archive: what backup, restore and export do with an InfluxDB 1.x, decided
without Docker or InfluxDB (the energy_archive module runs it; tests/integration/test_zz_backup.py
runs it for real)."""

import pytest

from energy_core import influx_archive as ia
from energy_core.archive import ArchiveError

NODE = {"containers": [
    {"name": "energy-ctl-mongo-x", "component": "mongo", "databases": []},
    {"name": "energy-ctl-influxdb-x", "component": "influxdb", "databases": [{"name": "power_x"}]},
    {"name": "energy-ctl-influxdb-y", "component": "influxdb", "databases": [{"name": "power_y"}]}]}


def test_the_influxdb_holding_a_database_is_found_in_the_minion_s_part():
    assert ia.holding(NODE, "power_y")["name"] == "energy-ctl-influxdb-y"
    assert ia.holding(NODE, "power_z") is None


def test_the_data_directory_is_the_volume_on_var_lib_influxdb():
    info = {"Name": "/i", "Mounts": [{"Destination": "/etc", "Source": "/x"},
                                      {"Destination": "/var/lib/influxdb", "Source": "/docker/volumes/v/_data"}]}
    assert ia.data_dir(info) == "/docker/volumes/v/_data"
    with pytest.raises(ArchiveError, match="no volume on /var/lib/influxdb"):
        ia.data_dir({"Name": "/i", "Mounts": []})


@pytest.mark.parametrize("env, address", [
    ([], "127.0.0.1:8088"), (["INFLUXDB_BIND_ADDRESS=:9088"], "127.0.0.1:9088"),
    (["A=1", "INFLUXDB_BIND_ADDRESS=10.0.0.5:8089"], "10.0.0.5:8089")])
def test_the_rpc_address_follows_the_container_s_environment(env, address):
    assert ia.bind_address({"Config": {"Env": env}}) == address


def test_a_backup_needs_its_size_and_a_margin_in_every_place():
    mib = 2**20
    assert ia.space_problem("power_x", 10 * mib, [("volume", 100 * mib), ("cache", 100 * mib)]) is None
    problem = ia.space_problem("power_x", 10 * mib, [("volume", 100 * mib), ("cache", 20 * mib)])
    assert problem.startswith("no space for the backup of power_x: it needs about 10.0 MiB on cache")
    assert "20.0 MiB free" in problem and "Fix:" in problem


def test_the_influxd_command_lines():
    assert ia.backup_argv("h:1", "db", None, None, "in") == [
        "influxd", "backup", "-portable", "-host", "h:1", "-database", "db", "/var/lib/influxdb/in"]
    argv = ia.backup_argv("h:1", "db", 0, 10**9, "in")
    assert argv[argv.index("-start") + 1] == "1970-01-01T00:00:00Z" and argv[argv.index("-end") + 1].startswith("1970")
    assert ia.restore_argv("h:1", "src", "tmp", "in") == [
        "influxd", "restore", "-portable", "-host", "h:1", "-db", "src", "-newdb", "tmp", "/var/lib/influxdb/in/backup"]
    assert str(ia.failed("restore into c", 2, "x" * 2000 + "end")).startswith("influxd restore into c failed (exit 2): ")


def test_only_plain_members_under_the_destination_are_unpacked(tmp_path):
    dest = str(tmp_path / "d")
    assert ia.unsafe_member([("backup", True), ("backup/a.tar", True)], dest) is None
    assert ia.unsafe_member([("backup", True), ("../escape", True)], dest) == "../escape"
    assert ia.unsafe_member([("backup/link", False)], dest) == "backup/link"


def test_the_restore_copies_per_policy_and_counts_what_it_wrote():
    assert ia.temporary_database("p" * 300, "1")[:5] == "ppppp" and len(ia.temporary_database("p" * 300, "1")) == 200
    assert ia.copy_statement("db", "autogen", "tmp", "rp") == (
        'SELECT * INTO "db"."autogen".:MEASUREMENT FROM "tmp"."rp"./.*/ GROUP BY *')
    assert ia.written({"series": [{"values": [[0, 3], [0, 4]]}, {"values": [[0, None]]}]}) == 7
    assert ia.written({}) == 0
    assert ia.short_restore("db", "ctl", 10, {"power_consumption": 10}) is None
    assert "9 points written, the backup holds 10" in str(ia.short_restore("db", "ctl", 9, {"power_consumption": 10}))


def test_the_export_asks_for_power_per_target_or_every_raw_point():
    assert ia.export_statement("csv", " WHERE x") == (
        'SELECT "power" FROM "power_consumption" WHERE x GROUP BY "sensor","target","scope"')
    assert ia.export_statement("lp", "") == 'SELECT * FROM "power_consumption" GROUP BY *'
    assert ia.field_types({"series": [{"values": [["power", "float"], ["rapl", "integer"]]}]}) == {
        "power": "float", "rapl": "integer"}
    assert ia.first_value({"series": [{"values": [[123, 1.0]]}]}) == 123 and ia.first_value({}) is None
