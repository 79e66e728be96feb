"""The stand-in sensor (tests/images/hwpc-sensor-sim/sim.py) behaves like the hwpc-sensor release it
plays: its refusals and their words, the targets it finds in a cgroup tree and their names, its
report documents, and the truth it records. Plain import, no Docker."""

import datetime
import importlib.util
import json
import pathlib
import random

import pytest

SIM = pathlib.Path(__file__).resolve().parents[1] / "images" / "hwpc-sensor-sim" / "sim.py"
spec = importlib.util.spec_from_file_location("hwpc_sensor_sim", SIM)
sim = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sim)

ID_A, ID_B = "a" * 64, "b" * 64
OLD, NEW = (1, 3), (1, 7)


def formula_config(**changes):
    config = {"name": "node-1", "verbose": False, "frequency": 1000, "cgroup_basepath": "/sys/fs/cgroup/perf_event",
              "output": {"type": "mongodb", "uri": "mongodb://s:pw@mongo:27017", "database": "d", "collection": "c"},
              "system": {"rapl": {"events": ["RAPL_ENERGY_PKG"], "monitoring_type": "MONITOR_ONE_CPU_PER_SOCKET"},
                         "msr": {"events": ["TSC", "APERF", "MPERF"]}},
              "container": {"core": {"events": ["CPU_CLK_THREAD_UNHALTED:REF_P", "LLC_MISSES"]}}}
    config.update(changes)
    return {k: v for k, v in config.items() if v is not None}


def refusal(tmp_path, config, release, name="config.json"):
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(sim.Refused) as raised:
        sim.read_config(str(path), release)
    return [message for _level, message in raised.value.args[0]]


def test_both_releases_accept_the_formula_config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(formula_config(cgroup_basepath=str(tmp_path))))
    (tmp_path / "cgroup.procs").write_text("")
    for release in (OLD, NEW):
        config = sim.read_config(str(path), release)
        assert config["name"] == "node-1" and config["system"]["rapl"]["type"] == sim.ONE_PER_SOCKET


@pytest.mark.parametrize("change,old,new", [
    ({"colour": "blue"}, "config: invalid string value for colour", "config: json: Unknown parameter: 'colour'"),
    ({"extra": {}}, "config: invalid sub category extra", "config: json: Unknown parameter: 'extra'"),
    ({"frequency": "fast"}, "config: invalid string value for frequency",
     "config: json: Perf sampling interval value is invalid (positive integer expected)"),
    ({"container": {"core": {"events": ["BOGUS"]}}},
     "config: event 'BOGUS' is invalid or unsupported by this machine",
     "config: json: Failed to add event 'BOGUS' to group 'core'"),
    ({"system": {"rapl": {"events": ["RAPL_ENERGY_PSYS"]}}},
     "config: event 'RAPL_ENERGY_PSYS' is invalid or unsupported by this machine",
     "config: json: Failed to add event 'RAPL_ENERGY_PSYS' to group 'rapl'"),
])
def test_refusals_in_each_release_words(tmp_path, change, old, new):
    assert refusal(tmp_path, formula_config(**change), OLD)[0] == old
    assert refusal(tmp_path, formula_config(**change), NEW)[0] == new


def test_1_3_refuses_a_missing_name_and_no_events_but_not_a_missing_basepath(tmp_path):
    assert refusal(tmp_path, formula_config(name=None), OLD) == [
        "config: you must provide a sensor name", "config: failed to validate config"]
    assert refusal(tmp_path, formula_config(system={}, container={}), OLD)[0] == \
        "config: you must provide event(s) to monitor"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(formula_config(cgroup_basepath="/nowhere")))
    assert sim.read_config(str(path), OLD)["cgroup_basepath"] == "/nowhere"  # silently: no container ever


def test_1_4_and_later_refuse_a_missing_basepath_a_big_file_and_other_extensions(tmp_path):
    assert refusal(tmp_path, formula_config(cgroup_basepath="/nowhere"), NEW)[0] == \
        "config: Failed to get cgroup basepath (/nowhere) information: No such file or directory"
    big = formula_config(name="x" * 4100)
    assert refusal(tmp_path, big, NEW)[0].startswith("config: json: Configuration file size is too big")
    assert refusal(tmp_path, formula_config(), NEW, "config.conf")[0] == \
        "config: cli: Unsupported configuration file format: .conf"


def cgroup_tree(root, docker_dir, v2=False):
    """A perf_event (v1) or unified (v2) hierarchy with two containers, an empty cgroup and a service."""
    base = root / ("unified" if v2 else "perf_event")
    if v2:
        paths = [f"system.slice/docker-{ID_A}.scope", f"system.slice/docker-{ID_B}.scope", "system.slice/cron.service"]
    else:
        paths = [f"docker/{ID_A}", f"docker/{ID_B}", "docker/abc"]
    for path in paths:
        (base / path).mkdir(parents=True)
    for cid, name, labels in ((ID_A, "/work-heavy", {sim.LOAD_LABEL: "1.5"}), (ID_B, "/work-idle", {})):
        (docker_dir / cid).mkdir(parents=True)
        (docker_dir / cid / "config.v2.json").write_text(json.dumps({"Name": name, "Config": {"Labels": labels}}))
    return base


def test_1_3_names_v1_docker_targets_after_their_containers(tmp_path, monkeypatch):
    monkeypatch.setattr(sim, "DOCKER_CONTAINERS", str(tmp_path / "containers"))
    base = cgroup_tree(tmp_path, tmp_path / "containers")
    found = sorted(sim.discover(str(base), OLD).values(), key=lambda t: t[0])
    # docker/abc is no container's cgroup: skipped
    assert [name for name, _labels in found] == ["work-heavy", "work-idle"]
    assert [sim.load_of(labels) for _name, labels in found] == [1.5, 0.05]
    assert sorted(name for name, _ in sim.discover(str(base), NEW).values()) == sorted([
        "/docker/abc", f"/docker/{ID_A}", f"/docker/{ID_B}"])


def test_v2_targets_are_cgroup_paths_and_every_leaf_is_monitored(tmp_path, monkeypatch):
    monkeypatch.setattr(sim, "DOCKER_CONTAINERS", str(tmp_path / "containers"))
    base = cgroup_tree(tmp_path, tmp_path / "containers", v2=True)
    for release in (OLD, NEW):
        found = dict(sim.discover(str(base), release).values())
        assert sorted(found) == ["/system.slice/cron.service", f"/system.slice/docker-{ID_A}.scope",
                                 f"/system.slice/docker-{ID_B}.scope"]
        assert sim.load_of(found[f"/system.slice/docker-{ID_A}.scope"]) == 1.5  # labels still give the truth


def test_a_machine_leaves_out_the_containers_labelled_as_another_minions(tmp_path, monkeypatch):
    monkeypatch.setattr(sim, "DOCKER_CONTAINERS", str(tmp_path / "containers"))
    base = cgroup_tree(tmp_path, tmp_path / "containers")
    (tmp_path / "containers" / ID_B / "config.v2.json").write_text(json.dumps(
        {"Name": "/energy-node-b-sensor", "Config": {"Labels": {sim.MACHINE_LABEL: "node-b"}}}))
    names = {m: sorted(n for n, _ in sim.discover(str(base), OLD, m).values()) for m in ("node-a", "node-b", None)}
    assert names["node-a"] == ["work-heavy"]  # node-b's sensor runs on another machine
    assert names["node-b"] == ["energy-node-b-sensor", "work-heavy"]  # unlabelled: on every machine
    assert names[None] == ["energy-node-b-sensor", "work-heavy"]


def test_an_empty_hierarchy_is_one_unnamed_target_in_1_3_and_none_later(tmp_path):
    assert [n for n, _ in sim.discover(str(tmp_path), OLD).values()] == [""]
    assert not sim.discover(str(tmp_path), NEW)


def test_reports_per_socket_cumulative_times_and_the_truth():
    config = formula_config()
    config["system"] = {"rapl": {"events": ["RAPL_ENERGY_PKG"], "type": sim.ONE_PER_SOCKET},
                        "msr": {"events": ["TSC", "APERF", "MPERF"], "type": sim.ALL_PER_SOCKET}}
    config["container"] = {"core": {"events": ["CPU_CLK_THREAD_UNHALTED:REF_P"], "type": sim.ALL_PER_SOCKET}}
    machine = {"topology": {"0": ["1", "0"]}, "hz": 2.1e9, "ticks_ns": {}, "jitter": 0.0}
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    for _ in range(3):
        reports, truth = sim.tick_documents(config, machine, {"heavy": 1.5, "idle": 0.5}, now, random.Random(1))
    by_target = {r["target"]: r for r in reports}
    assert list(by_target["all"]["groups"]["rapl"]["0"]) == ["1"]  # the socket's first CPU in directory order
    assert sorted(by_target["all"]["groups"]["msr"]["0"]) == ["0", "1"]
    assert by_target["heavy"]["groups"]["core"]["0"]["1"]["time_enabled"] == 3 * 10**9  # cumulative (1.3.0)
    machine["cumulative"] = False
    reports, _ = sim.tick_documents(config, machine, {"heavy": 1.5}, now, random.Random(1))
    assert reports[1]["groups"]["core"]["0"]["1"]["time_running"] == 10**9  # per tick (1.7.0)
    assert truth["package_w"] == pytest.approx(12 + 9 * 2.0)
    assert truth["shares"] == {"heavy": 0.75, "idle": 0.25}
    assert truth["watts"]["heavy"] == pytest.approx(30 * 0.75)
    rapl_j = by_target["all"]["groups"]["rapl"]["0"]["1"]["RAPL_ENERGY_PKG"] / sim.RAPL_UNIT
    assert rapl_j == pytest.approx(30.0)
    cycles = [by_target[t]["groups"]["core"]["0"]["0"]["CPU_CLK_THREAD_UNHALTED:REF_P"] for t in ("heavy", "idle")]
    assert cycles[0] / sum(cycles) == pytest.approx(0.75)
