"""The demo cluster: a local salt-master and 4 salt-minions (3 CPU names) on this machine's Docker.

    python scripts/demo.py up     # start master + minions, salt-run state.orchestrate energy.orch
    python scripts/demo.py down   # salt-run state.orchestrate energy.clean_orch, stop minions, master

`up` also runs three small workload containers per machine (demo-<minion>-web, -db, -batch; the
batch one starts and stops every 30 s), which the stand-in sensors find in the host's cgroups;
`down` (make stop) removes them.

Each minion plays one machine: its CPU through the `energy_facts` minion config, its address on
the loopback range (ctl, the control minion, on 127.0.0.1: InfluxDB is published there; the
others on 127.0.1.x, apart from the test minions on 127.0.0.11-14). The
sensor and MongoDB images are the test stand-ins (no RAPL and no MongoDB server here); SmartWatts
and InfluxDB are the real ones.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "_utils"))

from energy_core import events  # noqa: E402  the formula's event tables
DEMO = ROOT / ".demo"
BIN = pathlib.Path(sys.executable).parent
MASTER_CONF = DEMO / "master" / "conf"
PUBLISH_PORT, RET_PORT = 14505, 14506
GRAFANA_PASSWORD = "energy-demo-grafana"  # a demo on loopback; set your own in a real pillar
# the workload containers per machine: real containers the stand-in sensors find in the host's
# cgroups, each with its load in busy CPUs (label energy.sim.load, the stand-in's known truth); the
# PULSE one starts and stops every 30 s (`demo.py pulse`, started by `up`, stopped by `down`)
WORKLOADS = {"web": 0.6, "db": 0.3, "batch": 0.5}
PULSE, PULSE_SECONDS = "batch", 30
WORKLOAD_LABEL = "energy.demo.workload"
MONGO_PASSWORDS = {"admin_password": "demo-mongo-admin", "sensor_password": "demo-mongo-sensor",
                   "formula_password": "demo-mongo-formula"}  # the same: a demo, not a fleet

# the core events of the simulated CPUs: this VM has no PMU, so the grain finds none
SKYLAKE, HASWELL, ZEN2 = list(events.INTEL_SKYLAKE), list(events.INTEL_SANDY), list(events.AMD_ZEN2)

MINIONS = {
    "ctl": ("127.0.0.1", {"cpu_name": "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", "cpu_vendor": "intel",
                          "cpu_family": 6, "cpu_model": 85,
                          "cpu_base_freq_mhz": 2100, "rapl_domains": ["dram", "package"],
                          "pmu_events": SKYLAKE}),
    "node-a": ("127.0.1.12", {"cpu_name": "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", "cpu_vendor": "intel",
                              "cpu_family": 6, "cpu_model": 85,
                              "cpu_base_freq_mhz": 2100, "rapl_domains": ["dram", "package"],
                              "pmu_events": SKYLAKE}),
    "node-b": ("127.0.1.13", {"cpu_name": "AMD EPYC 7452 32-Core Processor", "cpu_vendor": "amd",
                              "cpu_family": 23, "cpu_model": 49,
                              "cpu_base_freq_mhz": 2350, "rapl_domains": ["package"],
                              "pmu_events": ZEN2}),
    "node-c": ("127.0.1.14", {"cpu_name": "Intel(R) Xeon(R) CPU E5-2630 v3 @ 2.40GHz", "cpu_vendor": "intel",
                              "cpu_family": 6, "cpu_model": 63,
                              "cpu_base_freq_mhz": 2400, "rapl_domains": ["dram", "package"],
                              "pmu_events": HASWELL}),
}


def minions(count=4):
    """The demo's minions: the four above, then sensor-only minions node-04, node-05, ... (the three
    CPU models in turn, on 127.0.2.x) up to ``count`` (benchmarks/scale.py)."""
    base = dict(MINIONS_4)
    models = [MINIONS_4[m][1] for m in ("node-a", "node-b", "node-c")]
    for i in range(len(base), count):
        base[f"node-{i:02d}"] = (f"127.0.2.{i}", dict(models[i % 3]))
    return base


MINIONS_4 = MINIONS
MINIONS = minions(int(os.environ.get("DEMO_MINIONS", "4")))


def write_yaml(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def pillar():
    images = json.loads((ROOT / ".cache" / "images.json").read_text())

    def image(key, **extra):
        repo, tag = images[key].rsplit(":", 1)
        return dict(image=repo, tag=tag, **extra)

    return {"energy": {
        "control": "ctl",
        "roles": {"sensors": "*", "mongos": ["ctl", "node-a"], "formulas": ["ctl"], "influxdbs": ["ctl"]},
        "config_dir": str(DEMO / "etc"),
        # every sensor of this one machine sees every minion's workloads and the stack's containers
        # (the workloads run on the four first minions; the extra ones of benchmarks/scale.py run a
        # sensor only: counting them too would shrink energy:formula:max_sensors to one sensor per
        # SmartWatts, and the scale run would measure 48 SmartWatts instead of the orch)
        "experiment": {"containers": len(WORKLOADS) * len(MINIONS_4) + 12
                       + (len(MINIONS) - len(MINIONS_4)) // 4},
        # the stand-in plays the hwpc-sensor release the formula pins
        "sensor": image("hwpc-sensor-sim", env={"SIM_RELEASE": str(yaml.safe_load(
            (ROOT / "energy" / "defaults.yaml").read_text())["energy"]["sensor"]["tag"])}),
        "mongo": image("mongo", **MONGO_PASSWORDS),
        "formula": image("smartwatts"),
        "influxdb": image("influxdb"),
        # the Grafana stand-in (no Grafana image can be had here), published on ctl's address
        # (127.0.0.1:3000); production uses grafana/grafana-oss. The containers share the default
        # network name (energy); the integration tests use their own
        "grafana": image("grafana", admin_password=GRAFANA_PASSWORD),
        # the demo's daemons can restart: the orch has them load the reactor and the engines
        "heal": {"events": {"restart_minion": True, "restart_master": True}},
    }}


def configure():
    common = {"user": "root", "log_level_logfile": "info", "publish_port": PUBLISH_PORT, "ret_port": RET_PORT}
    write_yaml(MASTER_CONF / "master", dict(
        common, root_dir=str(DEMO / "master"), interface="127.0.0.1", auto_accept=True,
        pidfile=str(DEMO / "master" / "master.pid"), file_roots={"base": [str(DEMO / "srv")]},
        pillar_roots={"base": [str(DEMO / "pillar")]}, timeout=30,
        # salt-run energy.backup/export: the minions push their archives with cp.push
        file_recv=True, file_recv_max_size=1024,
        # each minion's part of the plan the orch computes on the master, as its pillar energy_plan
        ext_pillar=[{"energy_plan": {}}]))
    srv = DEMO / "srv"  # only the formula: the repository would make the fileserver walk .venv
    srv.mkdir(parents=True, exist_ok=True)
    for name in ("energy", "_utils", "_grains", "_modules", "_states", "_runners", "_pillar", "examples"):
        if not (srv / name).exists():
            (srv / name).symlink_to(ROOT / name)
    write_yaml(DEMO / "pillar" / "top.sls", {"base": {"*": ["energy"]}})
    write_yaml(DEMO / "pillar" / "energy.sls", pillar())
    for minion, (address, facts) in MINIONS.items():
        write_yaml(DEMO / minion / "conf" / "minion", dict(
            common, id=minion, root_dir=str(DEMO / minion), master="127.0.0.1", master_port=RET_PORT,
            pidfile=str(DEMO / minion / "minion.pid"), energy_facts=dict(facts, address=address)))


# Salt 3008.3 logs this for clients of its own that it never destroys: salt-run's Runner and its
# MasterMinion on every run, state.orchestrate's MasterMinion, and the clients behind each
# salt.state / salt.function / salt.runner step and saltutil.runner call. The formula's own code
# leaves none (tests/functional/test_clean_output.py, tests/integration/test_runner_output.py).
SALTS_OWN_LEAK = re.compile(r"(\[WARNING *\] )?unclosed \w+ <salt\.[\w.]+ object at 0x[0-9a-f]+>; "
                            r"call ``destroy\(\)`` or use as a context manager")
LEFT_OUT = []


def left_out():
    if LEFT_OUT:
        print(f"\n({len(LEFT_OUT)} 'unclosed ...' warnings that Salt 3008.3 prints for clients of its own were "
              "left out of the output above: see SALTS_OWN_LEAK in scripts/demo.py)")


def salt(tool, *args, check=True, capture=False):
    cmd = [str(BIN / tool), "-c", str(MASTER_CONF), *args]
    print("+", " ".join(cmd[0:1] + [tool] + list(args)), flush=True)
    if capture:
        return subprocess.run(cmd, check=check, text=True, capture_output=True)
    with subprocess.Popen(cmd, text=True, stderr=subprocess.PIPE) as proc:
        for line in proc.stderr:
            if SALTS_OWN_LEAK.fullmatch(line.strip()):
                LEFT_OUT.append(line)
            else:
                print(line, end="", file=sys.stderr, flush=True)
    if check and proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return subprocess.CompletedProcess(cmd, proc.returncode)


def salt_json(tool, *args):
    """What a salt command printed as JSON, or {} when it printed none (a daemon restarting)."""
    ret = salt(tool, "--out=json", *args, check=False, capture=True)
    try:
        return json.loads(ret.stdout or "{}")
    except json.JSONDecodeError:
        return {}


def minions_return(fun):
    """{minion: return} of ``fun`` on the demo's minions (10 s), and whether each returned True."""
    answered = salt_json("salt", "--static", "-t", "10", "*", fun)
    return answered, set(answered) >= set(MINIONS) and all(v is True for v in answered.values())


def running(pidfile):
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start(restart=True):
    """Configure and start the master and every minion of MINIONS, and wait until they answer."""
    configure()
    if not running(DEMO / "master" / "master.pid"):
        subprocess.run([str(BIN / "salt-master"), "-c", str(MASTER_CONF), "-d"], check=True)
    for minion in MINIONS:
        if restart or not running(DEMO / minion / "minion.pid"):
            stop(DEMO / minion / "minion.pid")  # a minion reads its config (energy_facts) only at start
            subprocess.run([str(BIN / "salt-minion"), "-c", str(DEMO / minion / "conf"), "-d"], check=True)
    deadline = time.time() + 120 + 5 * len(MINIONS)
    while True:
        answered, everyone = minions_return("test.ping")
        if everyone:
            break
        if time.time() > deadline:
            sys.exit(f"demo: minions did not answer in 120 s: {answered}")
        time.sleep(3)
    salt("salt", "*", "saltutil.refresh_pillar", "wait=True", capture=True)


def up():
    start()
    ret = salt("salt-run", "state.orchestrate", "energy.orch", "--state-output=terse", check=False)
    if ret.returncode:
        sys.exit("demo: the orchestrate run failed (see above)")
    start_workloads()  # after the orch: the sensor SLS mounted the perf_event hierarchy (cgroup v1)
    wait_armed()
    show()


def docker_cli(*args, check=False):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def start_workloads():
    """Start each minion's workload containers (on no network) and the process pulsing one of them."""
    remove_workloads()
    image = json.loads((ROOT / ".cache" / "images.json").read_text())["python"]
    for minion in [m for m in MINIONS if m in MINIONS_4]:
        for name, load in WORKLOADS.items():
            docker_cli("run", "-d", "--name", f"demo-{minion}-{name}", "--network", "none", "--read-only",
                       "--cap-drop", "ALL", "--memory", "32m", "--label", f"{WORKLOAD_LABEL}={minion}",
                       "--label", f"energy.sim.load={load}", image, "sleep", "infinity", check=True)
    log = open(DEMO / "pulse.log", "ab")  # pylint: disable=consider-using-with
    pulse_process = subprocess.Popen([sys.executable, __file__, "pulse"], stdout=log, stderr=log,
                                     start_new_session=True)
    (DEMO / "pulse.pid").write_text(str(pulse_process.pid))
    print(f"demo: workloads {', '.join(WORKLOADS)} on each minion (demo-<minion>-<name>); "
          f"{PULSE} starts and stops every {PULSE_SECONDS} s")


def pulse():
    """Start and stop every minion's PULSE workload every PULSE_SECONDS, until stopped."""
    names = [f"demo-{minion}-{PULSE}" for minion in MINIONS if minion in MINIONS_4]
    running_now = True
    while True:
        time.sleep(PULSE_SECONDS)
        docker_cli("stop" if running_now else "start", *(["-t", "1"] if running_now else []), *names)
        running_now = not running_now


def remove_workloads():
    stop(DEMO / "pulse.pid")
    ids = docker_cli("ps", "-aq", "--filter", f"label={WORKLOAD_LABEL}").stdout.split()
    if ids:
        docker_cli("rm", "-f", *ids)


def wait_armed(timeout=180):
    """The orch restarts salt-master (heal:events:restart_master) and the minions restart
    themselves to load the reactor and the docker_events engines: wait until both are loaded."""
    deadline = time.time() + timeout
    time.sleep(8)  # the restarts start a few seconds after the orch returned
    reactor = engines = {}
    while time.time() < deadline:
        reactor = salt_json("salt-run", "energy.reactor")
        if reactor.get("loaded"):
            engines, everyone = minions_return("energy_heal.engine_loaded")
            if everyone:
                print(f"\nEvent-driven recovery armed: the master's reactor has {reactor['file']}, "
                      f"the docker_events engine runs on {', '.join(sorted(engines))}")
                return
        time.sleep(3)
    print(f"\ndemo: event-driven recovery not armed after {timeout} s (the heal schedule still runs): "
          f"reactor {reactor.get('comment', reactor)}; engines {engines}")


def show():
    ret = salt("salt", "--out=json", "ctl", "energy.summary", capture=True)
    summary = json.loads(ret.stdout)["ctl"]
    print("\nPower data per CPU name (InfluxDB, measurement power_consumption, field power, tag target):")
    for cpu, info in sorted(summary["cpus"].items()):
        print(f"  {cpu}\n    sensors {', '.join(info['sensors'])} -> mongo on {info['mongo']} "
              f"-> SmartWatts on {info['formula']} -> {info['influxdb_url']} db {info['influxdb_database']}")
    print("\nLatest watts per container (SmartWatts needs ~20 s after start for its first points):")
    deadline = time.time() + 150
    pending = dict(summary["cpus"])
    while pending and time.time() < deadline:
        for cpu, info in list(pending.items()):
            rows = influx_latest(info["influxdb_url"], info["influxdb_database"])
            # rapl = measured package power, global = the model's total; wait for containers
            if any(target not in ("rapl", "global") for target, _sensor, _watts in rows):
                print(f"  {cpu}")
                for target, sensor, watts in rows:
                    print(f"    {sensor:8} {target:10} {watts:7.2f} W")
                del pending[cpu]
        if pending:
            time.sleep(5)
    for cpu in pending:
        print(f"  {cpu}: no point yet; query again with: curl -G {summary['cpus'][cpu]['influxdb_url']}/query "
              f"--data-urlencode db={summary['cpus'][cpu]['influxdb_database']} "
              "--data-urlencode \"q=SELECT last(power) FROM power_consumption GROUP BY target, sensor\"")
    if summary.get("grafana_url"):
        print(f"\nGrafana on {summary['grafana']}: {summary['grafana_url']} (admin / {GRAFANA_PASSWORD}); "
              "dashboard uid energy-power. Here it is the API-only stand-in: "
              f"curl -u admin:{GRAFANA_PASSWORD} {summary['grafana_url']}/api/datasources")
    print("\nThe deployment as it runs (salt-run energy.summary; format=svg draws it):", flush=True)
    (DEMO / "topology.svg").unlink(missing_ok=True)  # the summary writes only new files
    salt("salt-run", "energy.summary", "format=svg", f"path={DEMO / 'topology.svg'}", check=False)
    left_out()


def influx_latest(url, database):
    query = ("SELECT last(power) FROM power_consumption WHERE time > now() - 1m AND scope = 'cpu' "
             "GROUP BY target, sensor")
    try:
        with urllib.request.urlopen(f"{url}/query?" + urllib.parse.urlencode({"db": database, "q": query}),
                                    timeout=5) as resp:
            result = json.load(resp)["results"][0]
    except (OSError, ValueError, KeyError):
        return []
    rows = []
    for series in result.get("series", []):
        rows.append((series["tags"]["target"], series["tags"]["sensor"], series["values"][0][1]))
    return sorted(rows, key=lambda r: (r[1], r[0]))


def down():
    master = running(DEMO / "master" / "master.pid")
    left = []
    if master and MASTER_CONF.exists():
        # a minion busy with its heal schedule may miss the first run's timeout: its schedule is
        # gone after that run, so a second one finds it free
        for _ in range(2):
            if salt("salt-run", "state.orchestrate", "energy.clean_orch", "--state-output=terse",
                    check=False).returncode == 0:
                break
            time.sleep(10)
        else:
            left = sorted(MINIONS)
    else:
        # no master (the machine restarted, the daemons are gone), but Docker restarts the stack's
        # containers by their restart policy: remove the demo's own (by label; volumes are kept)
        for minion in MINIONS:
            ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=energy.minion={minion}"],
                                 capture_output=True, text=True, check=False).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
                print(f"demo: salt-master is not running; removed {len(ids)} container(s) of {minion} with docker")
    remove_workloads()
    for pidfile in sorted(DEMO.glob("*/minion.pid")):  # minions before their master (also node-04...)
        stop(pidfile)
    stop(DEMO / "master" / "master.pid")
    # and any daemon of the demo the pidfiles no longer name (one restarted by hand, say)
    stray = f"salt-(minion|master) -c {DEMO}/"
    if subprocess.run(["pkill", "-f", stray], check=False).returncode == 0:
        time.sleep(5)
        subprocess.run(["pkill", "-9", "-f", stray], check=False)
    if left:
        print("demo: clean_orch failed twice; containers may be left: "
              f"docker ps --filter label=energy.minion (minions {', '.join(left)})")
    print("demo: stopped (data volumes kept; `docker volume ls | grep energy-` lists them)")
    left_out()


def stop(pidfile):
    pid = running(pidfile)
    if not pid:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if not running(pidfile):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    {"up": up, "down": down, "show": show, "pulse": pulse}[sys.argv[1] if len(sys.argv) > 1 else "up"]()
