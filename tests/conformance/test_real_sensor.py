"""Conformance with the REAL hwpc-sensor: the pinned release (energy/defaults.yaml), built from
upstream's release tarball by tests/images/build.sh (image ``hwpc-sensor-<release>``, cached per
run), runs every sensor config the formula generates for the recorded machines
(tests/data/machines) in mode best, mode common and with added events, and each is accepted; each
known-bad variant is refused with the message the formula's health check
(``energy_core.sensor_faults``) turns into the right reason and fix.

This machine has no core PMU, no RAPL and no msr aperf/mperf, and its Docker engine cannot grant
CAP_PERFMON. The sensor runs unmodified with the LD_PRELOAD library of
tests/images/hwpc-sensor/perfshim.c: it answers the sensor's start-up perf probe (and, for the power
test, every perf_event_open with synthetic counters) and its CAP_PERFMON capset
(``PERFSHIM_CAPSET``); libpfm4 is forced onto each machine's core PMU (``LIBPFM_FORCE_PMU``, per
``events.INTEL_MODELS``/``AMD_MODELS``) and asked about the architectural and RAPL PMUs beside it,
as on that machine. What this cannot cover: the RAPL DRAM table libpfm4 picks from CPUID
(``PERFSHIM_RAPL_DRAM`` says it from the model table, which tests/unit/test_libpfm4_tables.py
checks from libpfm4's source), and real counts. In a clone without upstream's sources the image is
not built and these tests say so and are skipped.
"""

import copy
import json
import os
import pathlib
import re
import subprocess
import tempfile
import time
import uuid

import pytest
import yaml

from energy_core import events, plan, sensor_faults
from tests.conftest import ROOT

DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
MACHINES = ROOT / "tests" / "data" / "machines"
RELEASE = yaml.safe_load((ROOT / "energy" / "defaults.yaml").read_text())["energy"]["sensor"]["tag"]
MARK = f"energy-conf-{uuid.uuid4().hex[:6]}"


def _grains():
    import importlib.util  # pylint: disable=import-outside-toplevel

    spec = importlib.util.spec_from_file_location("energy_grains_conformance", ROOT / "_grains" / "energy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def machines():
    """{name: grain facts} of the recorded machines the sensor supports (bare metal, known model)."""
    grains = _grains()
    found = {}
    for path in sorted(p for p in MACHINES.iterdir() if p.is_dir()):
        facts = grains._collect(str(path))  # pylint: disable=protected-access
        if facts["sensor_support"] == "ok":
            found[path.name] = facts
    return found


def image_of(release):
    path = ROOT / ".cache" / "images.json"
    tag = json.loads(path.read_text()).get(f"hwpc-sensor-{release}") if path.exists() else None
    if not tag:
        pytest.skip(f"the real hwpc-sensor {release} image was not built: upstream's sources were absent when "
                    "tests/images/build.sh ran (HWPC_VENDOR); CI has them")
    return tag


def docker(*args, check=True, timeout=120):
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def sensor_image():
    return image_of(RELEASE)


@pytest.fixture(scope="module")
def cgroup_root():
    """A cgroup tree with three container cgroups (``docker/<64 hex>``): the sensor checks that its
    basepath is a cgroup filesystem and walks it. Made in this host's cgroup v2 mount."""
    mounts = pathlib.Path("/proc/mounts").read_text().splitlines()
    cgroup2 = [line.split()[1] for line in mounts if line.split()[2:3] == ["cgroup2"]]
    if not cgroup2:
        pytest.fail("no cgroup2 mount on this host to make the sensor's cgroup tree in")
    root = pathlib.Path(cgroup2[0]) / MARK
    ids = [c * 64 for c in "abc"]
    for cid in ids:
        (root / "docker" / cid).mkdir(parents=True)
    yield root, ids
    for cid in ids:
        (root / "docker" / cid).rmdir()
    (root / "docker").rmdir()
    root.rmdir()


@pytest.fixture(scope="module")
def msr_dir():
    """The kernel's msr PMU as a bare-metal machine has it (this VM's lacks aperf and mperf)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp)
        (path / "type").write_text("31\n")
        (path / "events").mkdir()
        for name, code in (("tsc", 0), ("aperf", 1), ("mperf", 2)):
            (path / "events" / name).write_text(f"event={code:#04x}\n")
        yield path


def shim_env(facts, release=RELEASE):
    """LIBPFM_FORCE_PMU and the shim's settings that make libpfm4 see the machine of ``facts``."""
    family, pmus, rapl = events.model_entry(facts["cpu_vendor"], facts["cpu_family"], facts["cpu_model"])
    intel = facts["cpu_vendor"] == "intel"
    others = ["ix86arch", "rapl"] if intel else ["amd64_rapl"]
    if release == "1.3.0":  # its libpfm4 fork has the msr PMU
        others.append("intel_msr" if intel else "amd64_msr")
    return {"LIBPFM_FORCE_PMU": pmus[0], "PERFSHIM_PFM_PMUS": ",".join(others),
            "PERFSHIM_RAPL_DRAM": "1" if "dram" in rapl else "0", "PERFSHIM_CAPSET": "1",
            "LD_PRELOAD": "/usr/local/lib/perfshim.so"}


def run_sensor(image, config, env, cgroup, msr, network="none", detach=None):
    """Run the real sensor on ``config``, ``cgroup`` bound at its basepath (None: nothing there);
    its output, or with ``detach`` (a container name) the running container's name."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="energy-conf-"))
    (directory / "config.json").write_text(json.dumps(config))
    args = ["--network", network, "-v", f"{directory}/config.json:/etc/hwpc-sensor/config.json:ro",
            "-v", f"{msr}:/sys/devices/msr:ro"]
    if cgroup is not None:
        args += ["-v", f"{cgroup}:{config['cgroup_basepath']}:ro"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    command = [image, "--config-file", "/etc/hwpc-sensor/config.json"]
    if detach:
        docker("run", "-d", "--name", detach, *args, *command)
        return detach
    done = docker("run", "--rm", *args, *command, check=False, timeout=60)
    return done.stdout + done.stderr


def fleet_configs(conf_base, facts_by_machine, mode, extra=None):
    """{machine: the sensor config the formula generates} for a fleet of the recorded machines."""
    conf = copy.deepcopy(conf_base)
    conf["sensor"].update(mode=mode, extra_events=extra or {})
    sensors = {}
    for i, (name, facts) in enumerate(sorted(facts_by_machine.items())):
        # kernel: some records predate 5.8, where 1.7.0 cannot have CAP_PERFMON (a plan error, unit-tested);
        # the config does not depend on it
        sensors[name] = dict(facts, address=f"10.0.0.{i + 10}", docker_engine="E1", docker_perfmon=True,
                             kernel="6.1.0")
    ctl = {"cpu_name": "control", "address": "10.0.0.9", "docker_engine": "E1", "kernel": "6.1.0"}
    role_facts = {"sensors": sensors, "mongos": {"ctl": ctl}, "formulas": {"ctl": ctl}, "influxdbs": {"ctl": ctl},
                  "grafana": {"ctl": ctl}}
    full_plan = plan.build(conf, role_facts)
    found = {}
    for name in sensors:
        (entry,) = [c for c in plan.node(full_plan, name)["containers"] if c["component"] == "sensor"]
        (config,) = [f["data"] for f in entry["files"].values() if f.get("format") == "json"]
        found[name] = config
    return found, full_plan


@pytest.fixture(scope="module")
def conf(defaults):
    conf = copy.deepcopy(defaults)
    conf.update(control="ctl")
    conf["grafana"]["admin_password"] = "grafana-admin-pw"
    conf["mongo"]["auth"] = False
    return conf


# an event each family's libpfm4 PMU has beside its table, added as energy:sensor:extra_events
ADDED = {"intel": "BR_INST_RETIRED:ALL_BRANCHES", "amd": "RETIRED_BRANCH_INSTRUCTIONS"}


def every_config(conf):
    facts = machines()
    yield from ((f"{m}-best", facts[m], c) for m, c in fleet_configs(conf, facts, "best")[0].items())
    yield from ((f"{m}-common", facts[m], c) for m, c in fleet_configs(conf, facts, "common")[0].items())
    with_names = {m: dict(f, pmu_event_names=[ADDED[f["cpu_vendor"]].split(":")[0]]) for m, f in facts.items()}
    extra = {f["cpu_name"]: [ADDED[f["cpu_vendor"]]] for f in facts.values()}
    for m, c in fleet_configs(conf, with_names, "best", extra)[0].items():
        assert ADDED[facts[m]["cpu_vendor"]] in c["container"]["core"]["events"]
        yield f"{m}-added", facts[m], c


def test_the_recorded_machines_cover_every_family(defaults):
    families = {f["pmu_family"] for f in machines().values()}
    assert families == set(events.FAMILIES), "a family of events.FAMILIES has no recorded machine to run"


def test_every_generated_config_is_accepted(sensor_image, conf, cgroup_root, msr_dir):
    cgroup, _ = cgroup_root
    seen = []
    for label, facts, config in every_config(conf):
        out = run_sensor(sensor_image, config, shim_env(facts), cgroup, msr_dir)
        assert not re.search(r"^E: .* config: ", out, re.M), (label, config, out)
        # accepted: it went on to its storage, which this test gives it no network to reach
        assert sensor_faults.NO_STORAGE in out, (label, out)
        assert f"pmu: found {shim_env(facts)['LIBPFM_FORCE_PMU']} " in out, (label, out)
        seen.append(label)
    assert len(seen) >= 3 * len(machines())


def _variants(config):
    bad = {}
    unknown_key = copy.deepcopy(config)
    unknown_key["sampling"] = 5
    bad["unknown key"] = (unknown_key, "config: json: Unknown parameter: 'sampling'", None)
    for group, kind in (("core", "container"), ("rapl", "system"), ("msr", "system")):
        variant = copy.deepcopy(config)
        variant[kind][group]["events"].append("NOT_AN_EVENT")
        bad[f"unknown {group} event"] = (variant, f"Failed to add event 'NOT_AN_EVENT' to group '{group}'",
                                         "'NOT_AN_EVENT'")
    missing = copy.deepcopy(config)
    missing["cgroup_basepath"] = "/sys/fs/cgroup/no-such-hierarchy"
    bad["missing basepath"] = (missing, "Failed to get cgroup basepath", "does not exist")
    empty = copy.deepcopy(config)
    empty["container"]["core"]["events"] = []
    bad["empty group"] = (empty, "config: Events group 'core' is empty", None)
    return bad


@pytest.mark.parametrize("vendor", ["intel", "amd"])
def test_every_known_bad_variant_is_refused_with_the_message_health_reads(sensor_image, conf, cgroup_root,
                                                                           msr_dir, vendor):
    cgroup, _ = cgroup_root
    facts_by = {m: f for m, f in machines().items() if f["cpu_vendor"] == vendor}
    name, facts = sorted(facts_by.items())[0]
    config = fleet_configs(conf, facts_by, "best")[0][name]
    for label, (variant, message, reason) in _variants(config).items():
        missing = label == "missing basepath"  # nothing bound there: the path does not exist
        out = run_sensor(sensor_image, variant, shim_env(facts), None if missing else cgroup, msr_dir)
        assert message in out, (label, out)
        assert sensor_faults.NO_STORAGE not in out, (label, "it went on to its storage", out)
        if reason:
            host = sensor_faults.host_facts(variant, out, 2, "", not missing, 3)
            found = sensor_faults.fault(host, stopped=True)
            assert found and reason in found["reason"] and "Fix:" in found["reason"], (label, found, out)


def test_without_cap_perfmon_it_exits_with_the_message_health_reads(sensor_image, conf, cgroup_root, msr_dir):
    cgroup, _ = cgroup_root
    name, facts = sorted(machines().items())[0]
    config = fleet_configs(conf, machines(), "best")[0][name]
    env = dict(shim_env(facts), PERFSHIM_CAPSET="0")  # this engine cannot grant CAP_PERFMON: as it is
    out = run_sensor(sensor_image, config, env, cgroup, msr_dir)
    assert sensor_faults.NO_CAPABILITY in out and "CAP_PERFMON" in out, out
    found = sensor_faults.fault(sensor_faults.host_facts(config, out, 2, "", True, 3), stopped=True)
    assert found and "CAP_PERFMON" in found["reason"], found


# ----------------------------------------------------------------- end to end: reports become power
def _releases():
    """The releases whose images were built: the pinned one always; others when asked for
    (HWPC_SENSOR_RELEASES, as tests/images/build.sh reads it)."""
    return sorted(set((os.environ.get("HWPC_SENSOR_RELEASES") or RELEASE).split()) | {RELEASE})


def _formula_command(full_plan, minion, mongo, influx, smartwatts):
    """The SmartWatts command the formula generates for ``minion``'s group, aimed at this test's
    databases; with SmartWatts 2.4.1 the output is MongoDB (no InfluxDB 2 server runs here)."""
    (entry,) = [c for host in full_plan["hosts"].values() for c in host["containers"]
                if c["component"] == "formula"]
    args, env = list(entry["run"]["command"]), dict(entry["run"]["environment"])
    env["POWERAPI_INPUT_PULLER_URI"] = f"mongodb://{mongo}:27017"
    out = args.index("--output")
    end = args.index("--cpu-base-freq")
    if smartwatts == "smartwatts":
        output = args[out:end]
        output[output.index("--uri") + 1], output[output.index("--port") + 1] = influx, "8086"
    else:
        output = ["--output", "mongodb", "--model", "PowerReport", "--name", "power", "--uri",
                  f"mongodb://{mongo}:27017", "--db", "power", "--collection", "power"]
    return args[:out] + output + args[end:], env


def _power(smartwatts, influx_port, mongo, database):
    """{target: [watts, ...]} SmartWatts wrote so far (InfluxDB ``database``, or MongoDB)."""
    if smartwatts == "smartwatts":
        import urllib.parse  # pylint: disable=import-outside-toplevel
        import urllib.request  # pylint: disable=import-outside-toplevel

        query = urllib.parse.urlencode({"db": database, "q": "SELECT power, target FROM power_consumption"})
        with urllib.request.urlopen(f"http://127.0.0.1:{influx_port}/query?{query}", timeout=10) as answer:
            series = json.load(answer)["results"][0].get("series") or []
        rows = series[0]["values"] if series else []
        found = {}
        for _, watts, target in rows:
            found.setdefault(target, []).append(watts)
        return found
    script = ("import pymongo, json; c = pymongo.MongoClient('localhost', 27017)['power']['power']; found = {}\n"
              "for d in c.find().sort('timestamp', 1): found.setdefault(d['target'], []).append(d['power'])\n"
              "print(json.dumps(found))")
    return json.loads(docker("exec", mongo, "python3", "-c", script).stdout)


@pytest.mark.parametrize("release", _releases())
@pytest.mark.parametrize("smartwatts", ["smartwatts", "smartwatts24"])
def test_its_reports_become_power_per_container_in_smartwatts(release, smartwatts, images, conf, cgroup_root,
                                                              msr_dir):
    """The real sensor, its generated config, counters from the shim, a MongoDB, the formula's
    generated SmartWatts command (2.1.2 to InfluxDB 1.x; 2.4.1 to MongoDB): power per container."""
    image = image_of(release)
    cgroup, ids = cgroup_root
    name, facts = next((m, f) for m, f in sorted(machines().items()) if f["pmu_family"] == "amd_zen3")
    configs, full_plan = fleet_configs(conf, {name: facts}, "best")
    net, mongo, influx = f"{MARK}-{smartwatts}", f"{MARK}-mongo", f"{MARK}-influx"
    config = dict(configs[name], output=dict(configs[name]["output"], uri=f"mongodb://{mongo}:27017"))
    command, env = _formula_command(full_plan, "ctl", mongo, influx, smartwatts)
    names = [f"{MARK}-sensor", f"{MARK}-formula", mongo, influx]
    docker("network", "create", net)
    try:
        docker("run", "-d", "--name", mongo, "--network", net, images["mongo"])
        docker("run", "-d", "--name", influx, "--network", net, "-p", "127.0.0.1::8086", images["influxdb"])
        port = docker("port", influx, "8086").stdout.split(":")[-1].strip()
        _wait(lambda: docker("exec", mongo, "python3", "-c", "import pymongo; pymongo.MongoClient("
                             "'localhost', 27017, serverSelectionTimeoutMS=500).admin.command('ping')",
                             check=False).returncode == 0, "MongoDB")
        shares = ",".join(f"docker/{cid}:{share}" for cid, share in zip(ids, (0.5, 0.3, 0.2)))
        run_sensor(image, config, dict(shim_env(facts, release), PERFSHIM_COUNTERS="1", PERFSHIM_CGROUPS=shares),
                   cgroup, msr_dir, network=net, detach=names[0])
        formula_env = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        docker("run", "-d", "--name", names[1], "--network", net, *formula_env, images[smartwatts], *command)
        containers = {f"/docker/{cid}" for cid in ids}
        database = command[command.index("--output"):][command[command.index("--output"):].index("--db") + 1]
        found = _wait(lambda: (lambda p: p if all(len(p.get(c, [])) >= 12 for c in containers) else None)(
            _power(smartwatts, port, mongo, database)), "12 points per container", timeout=90)
        logs = docker("logs", names[0], check=False)
        assert "configuration is valid" in logs.stdout + logs.stderr
        assert set(found) >= containers | {"rapl", "global"}, sorted(found)
        last = {t: sum(v[-5:]) / 5 for t, v in found.items()}
        assert all(last[c] > 0.5 for c in containers), last
        assert abs(sum(last[c] for c in containers) - last["global"]) < 0.02 * last["global"], last
        assert abs(last["global"] - last["rapl"]) < 0.15 * last["rapl"], last
        assert last[f"/docker/{ids[0]}"] > last[f"/docker/{ids[2]}"], last  # 50 % of the work vs 20 %
    except BaseException:
        for container in names[:2]:  # what the sensor and SmartWatts said, for the failure's report
            done = docker("logs", "--tail", "15", container, check=False)
            print(f"--- {container}:\n{done.stdout}{done.stderr}")
        raise
    finally:
        for container in names:
            docker("rm", "-f", container, check=False)
        docker("network", "rm", net, check=False)


def _wait(probe, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(1)
    pytest.fail(f"{what}: not within {timeout} s")
