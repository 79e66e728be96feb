"""energy_core.trust: what the master accepts from a minion's return, and where it may write."""

import gzip
import hashlib
import os

import pytest

from energy_core import trust  # ArchiveError is checked as ValueError: other tests reload the core

MINION = "node-a"
GOOD_BACKUP = {"database": "power_x", "container": "energy-node-a-influxdb-x", "size": 10, "sha256": "a" * 64,
               "points": {"power_consumption": 120}, "first": "2026-11-26T10:00:00Z",
               "last": "2026-11-26T10:00:00.5Z", "seconds": 1.5}


def test_a_good_backup_answer_is_kept_to_the_keys_the_runner_uses():
    got = trust.answer(MINION, "energy_archive.backup_influxdb", dict(GOOD_BACKUP, extra="x" * 10_000), trust.BACKUP)
    assert set(got) == {"size", "sha256", "points", "first", "last", "seconds"}


@pytest.mark.parametrize("key, value", [
    ("size", -1), ("size", "10"), ("size", True), ("size", 10**18), ("size", 1.5),
    ("sha256", "A" * 64), ("sha256", "../../etc/passwd"), ("sha256", None),
    ("points", {"power_consumption": -5}), ("points", {"../x": "many"}), ("points", {"a\nb": 1}),
    ("points", ["power_consumption"]), ("points", {f"m{i}": 1 for i in range(101)}),
    ("first", "yesterday"), ("last", 17), ("seconds", float("nan")), ("seconds", -1),
])
def test_a_malformed_backup_answer_is_refused_naming_the_minion(key, value):
    with pytest.raises(trust.Untrusted, match=rf"^minion 'node-a': energy_archive.backup_influxdb returned {key}"):
        trust.answer(MINION, "energy_archive.backup_influxdb", dict(GOOD_BACKUP, **{key: value}), trust.BACKUP)


@pytest.mark.parametrize("value", ["not a mapping", None, ["rows", 3]])
def test_a_return_that_is_not_a_mapping_is_refused(value):
    with pytest.raises(trust.Untrusted, match="minion 'node-a': energy_archive.export_influxdb returned its return"):
        trust.answer(MINION, "energy_archive.export_influxdb", value, trust.EXPORT)


@pytest.mark.parametrize("path", ["relative/cache", "/var/cache/../../etc", "/var/cache\n/x", "/var/cache salt",
                                  "/" + "x" * 5000, 7])
def test_a_minions_cachedir_must_be_a_plain_absolute_path(path):
    with pytest.raises(trust.Untrusted, match="not a plain absolute path"):
        trust.remote_path(MINION, "config.get", "cachedir", path)
    assert trust.remote_path(MINION, "config.get", "cachedir", "/var/cache/salt/minion") == "/var/cache/salt/minion"


@pytest.mark.parametrize("name", ["/abs/path.csv", "../../x.csv", "..", ".", "", "a/b.csv", "x\0.csv", "x\n.csv",
                                  "x" * 300, None])
def test_a_name_that_is_not_one_plain_file_name_is_refused(name):
    with pytest.raises(trust.Untrusted, match="is not a plain file name"):
        trust.file_name(name)


def test_outbox_writes_new_files_only(tmp_path):
    box = trust.Outbox(tmp_path)
    box.create("power_x.csv").write(b"a\n")
    box.append("power_x.csv").write(b"b\n")
    (tmp_path / "theirs.csv").write_text("keep me")
    with pytest.raises(FileExistsError):
        box.create("theirs.csv")
    with pytest.raises(trust.Untrusted, match="was not created by this run"):
        box.append("theirs.csv")
    box.close()
    assert (tmp_path / "power_x.csv").read_bytes() == b"a\nb\n"
    assert (tmp_path / "theirs.csv").read_text() == "keep me"


def test_outbox_follows_no_link_out_of_its_directory(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text("untouched")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "power_x.csv").symlink_to(victim)
    (dest / "dangling.csv").symlink_to(outside / "new-file")
    (dest / "sub").symlink_to(outside)
    box = trust.Outbox(dest)
    for name in ("power_x.csv", "dangling.csv"):
        with pytest.raises(FileExistsError):
            box.create(name)
    with pytest.raises(FileExistsError):
        box.subdir("sub")
    for name in ("../outside/victim", "/tmp/x", "sub/victim"):
        with pytest.raises(trust.Untrusted):
            box.create(name)
    box.close()
    assert victim.read_text() == "untouched" and sorted(os.listdir(outside)) == ["victim"]


def test_outbox_resolves_its_directory_once(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    box = trust.Outbox(tmp_path / "link")
    assert box.path == str(real)
    box.create("a").close()
    assert (real / "a").exists()
    box.close()


def test_a_half_backup_is_removed_whole(tmp_path):
    box = trust.Outbox(tmp_path)
    sub = box.subdir("energy-backup-x")
    sub.create("a.tar.gz").write(b"x")
    sub.remove_created()
    box.remove_created()
    box.close()
    sub.close()
    assert os.listdir(tmp_path) == []


def pushed(tmp_path, data):
    source = tmp_path / "cache" / "upload.tar.gz"
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(data)
    return str(source)


def test_keep_checks_size_and_digest_against_what_arrived(tmp_path):
    data = b"archive bytes"
    dest = tmp_path / "dest"
    dest.mkdir()
    box = trust.Outbox(dest)
    got = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert trust.keep(box, MINION, pushed(tmp_path, data), "a.tar.gz", got) == len(data)
    assert (dest / "a.tar.gz").read_bytes() == data
    with pytest.raises(trust.Untrusted, match=r"minion 'node-a': energy_archive.backup_influxdb said 1 bytes, 13 arrived"):
        trust.keep(box, MINION, pushed(tmp_path, data), "b.tar.gz", dict(got, size=1))
    with pytest.raises(ValueError, match="arrived damaged"):
        trust.keep(box, MINION, pushed(tmp_path, data), "c.tar.gz", dict(got, sha256="0" * 64))
    with pytest.raises(ValueError, match="a.tar.gz exists in .*nothing is overwritten"):
        trust.keep(box, MINION, pushed(tmp_path, data), "a.tar.gz", got)
    assert (dest / "a.tar.gz").read_bytes() == data
    box.close()


def test_copy_rows_refuses_more_rows_than_arrived(tmp_path):
    box = trust.Outbox(tmp_path)
    source = tmp_path / "part.gz"
    with gzip.open(source, "wb") as out:
        out.write(b"1,a\n2,b\n")
    trust.copy_rows(box, "power_x.csv", "time,x\n", MINION, str(source), 2)
    with gzip.open(source, "wb") as out:
        out.write(b"3,c\n")
    with pytest.raises(trust.Untrusted, match="said 1000 rows, 1 lines arrived"):
        trust.copy_rows(box, "power_x.csv", "time,x\n", MINION, str(source), 1000)
    box.close()
    assert (tmp_path / "power_x.csv").read_bytes() == b"time,x\n1,a\n2,b\n3,c\n"
    assert not source.exists()


def test_live_keeps_only_well_formed_rows_and_says_what_it_dropped():
    live = {"containers": [
        {"name": "energy-node-a-sensor", "component": "sensor", "state": "running", "volume_bytes": 5},
        {"name": "../../etc/passwd", "component": "sensor", "state": "running"},
        {"name": "energy-node-a-grafana", "component": "<script>", "state": "hacked", "volume_bytes": -1,
         "published": "127.0.0.1:3000\nX", "health": {"status": "healthy", "x" * 100: 1}},
        "not a row",
    ]}
    clean, problems = trust.live(MINION, live)
    assert [r["name"] for r in clean["containers"]] == ["energy-node-a-sensor", "energy-node-a-grafana"]
    grafana = clean["containers"][1]
    assert (grafana["component"], grafana["state"], grafana["volume_bytes"], grafana["published"]) == (
        None, None, None, None)
    assert grafana["health"] == {"status": "healthy"}
    assert len(problems) == 3 and all(p.startswith("minion 'node-a': energy_inventory.live returned") for p in problems)
    assert trust.live(MINION, "boom")[0] == "boom"
    assert trust.live(MINION, {"containers": [{"name": f"c{i}"} for i in range(5000)]})[0]["containers"][999:] == [
        {"name": "c999", "component": None, "cpu": None, "state": None, "health": None, "maintenance": None,
         "published": None, "volume": None, "volume_bytes": None}]


def test_role_facts_asks_the_mine_once_for_roles_named_by_id():
    asked = []

    def mine_get(target):
        asked.append(target)
        return {"a": {"cpu_name": "X"}, "b": "not a mapping"}

    conf = {"control": "a", "roles": {"sensors": "*"}}
    facts = trust.role_facts(conf, mine_get)
    assert facts["sensors"] == {"a": {"cpu_name": "X"}}
    assert len(asked) == 1


def test_containers_of_a_plan_names_no_secret():
    full = {"hosts": {"a": {"containers": [{"name": "energy-a-mongo", "env": {"PASSWORD": "s3cret"}}]}}}
    assert trust.containers_of(full) == {"a": ["energy-a-mongo"]}


def test_copy_rows_stops_a_gzip_bomb_at_the_rows_claimed(tmp_path):
    (tmp_path / "dest").mkdir()
    box = trust.Outbox(tmp_path / "dest")
    source = tmp_path / "bomb.gz"
    with gzip.open(source, "wb") as out:  # 50 MB of one repeated line in about 50 kB
        out.write(b"1,a,b,c,cpu,1.0\n" * 3_200_000)
    assert os.path.getsize(source) < 200_000
    with pytest.raises(ValueError, match="more arrived"):
        trust.copy_rows(box, "power_x.csv", "time,x\n", MINION, str(source), 0)
    assert os.path.getsize(tmp_path / "dest" / "power_x.csv") < 2 << 20  # one block at most, never the 50 MB
    with gzip.open(source, "wb") as out:  # long lines: bounded by bytes per row too
        out.write(b"x" * (trust.MAX_ROW_BYTES * 10) + b"\n")
    with pytest.raises(ValueError, match="more arrived"):
        trust.copy_rows(box, "power_y.csv", "", MINION, str(source), 1)
