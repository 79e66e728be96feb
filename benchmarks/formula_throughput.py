"""How many sensor reports one SmartWatts reads per second with a steady delay: the constant
behind the default energy:formula:max_sensors (energy_core.sizing.FORMULA_REPORTS_PER_S).

Runs on the images `make images` builds (real SmartWatts 2.1.2, the MongoDB stand-in, real
InfluxDB 1.x), apart from the demo and the tests (containers energy-bench-*, ports 27901/8901).
It plays sensors as they write: every second, each of S simulated machines with CONTAINERS
containers adds its reports of that tick (the stand-in sensor's own report builder), S doubling
every STEP seconds (1, 2, 4, ...). While SmartWatts keeps up, the reports waiting in MongoDB stay
under a few seconds' worth; the first step where they pile up ends the run. The figure is the
highest rate that stayed steady. SmartWatts runs under the formula's default limits
(energy/defaults.yaml, energy:formula:limits): each step prints its memory (page cache left out)
and processes, and a step where it is killed or restarts ends the run, so the figure is one the
default limits hold.

The MongoDB stand-in (secantusdb, which the test image makes read SmartWatts' next report in
natural order, as mongod does) and everything else share this machine's cores; the default
max_sensors uses half of the figure.

    .venv/bin/python benchmarks/formula_throughput.py [CONTAINERS] [STEP] [MAX_SENSORS]
"""

import datetime
import importlib.util
import json
import os
import pathlib
import random
import sys
import time

import docker
import pymongo
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "_utils"), str(ROOT / "benchmarks")]

from energy_core import components, sizing  # noqa: E402
from tests.power import influx  # noqa: E402
from container_limits import MIB, sample  # noqa: E402

MONGO_PORT, INFLUX_PORT = 27901, 8901
DATABASE, COLLECTION, POWER = "sensors_bench", "hwpc", "power_bench"
EVENTS = ["CPU_CLK_THREAD_UNHALTED:REF_P", "CPU_CLK_THREAD_UNHALTED:THREAD_P", "INSTRUCTIONS_RETIRED", "LLC_MISSES"]


def simulator():
    spec = importlib.util.spec_from_file_location("sim", ROOT / "tests" / "images" / "hwpc-sensor-sim" / "sim.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Machines:
    """Simulated sensor machines, each adding its reports of one tick at a time."""

    def __init__(self, containers):
        self.sim = simulator()
        self.containers = containers
        self.machines = []

    def grow(self, count):
        while len(self.machines) < count:
            s = len(self.machines)
            one, every = self.sim.ONE_PER_SOCKET, self.sim.ALL_PER_SOCKET
            config = {"name": f"bench-{s}", "frequency": 1000,
                      "system": {"rapl": {"events": ["RAPL_ENERGY_PKG", "RAPL_ENERGY_DRAM"], "type": one},
                                 "msr": {"events": ["TSC", "APERF", "MPERF"], "type": every}},
                      "container": {"core": {"events": EVENTS, "type": every}}}
            machine = {"topology": {"0": [str(n) for n in range(16)]}, "hz": 2.1e9, "ticks_ns": {}}
            # loads in busy CPUs summing to about 4 of the 16 (the stand-in's known truth)
            targets = {f"c{c}": 4.0 * (1.0 + c) / sum(1.0 + n for n in range(self.containers))
                       for c in range(self.containers)}
            self.machines.append((config, machine, targets, random.Random(s)))

    def tick(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        docs = []
        for config, machine, targets, rng in self.machines:
            docs.extend(self.sim.tick_documents(config, machine, targets, now, rng)[0])
        return docs


def run(client, images, name, image, **kwargs):
    try:
        client.containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass
    return client.containers.run(images[image], name=name, detach=True, labels={"energy.bench": "1"}, **kwargs)


def wait_for(check, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return True
        except Exception:  # pylint: disable=broad-except
            pass
        time.sleep(0.5)
    return False


def main():
    containers = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    step = float(sys.argv[2]) if len(sys.argv) > 2 else 40
    most = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    images = json.loads((ROOT / ".cache" / "images.json").read_text())
    client = docker.from_env()
    started = []
    try:
        started.append(run(client, images, "energy-bench-mongo", "mongo",
                           ports={"27017/tcp": ("127.0.0.1", MONGO_PORT)}))
        started.append(run(client, images, "energy-bench-influxdb", "influxdb",
                           ports={"8086/tcp": ("127.0.0.1", INFLUX_PORT)}))
        mongo = pymongo.MongoClient(f"mongodb://127.0.0.1:{MONGO_PORT}", serverSelectionTimeoutMS=2000)
        url = f"http://127.0.0.1:{INFLUX_PORT}"
        if not wait_for(lambda: mongo.admin.command("ping")) or not wait_for(lambda: influx(url, "", "SHOW DATABASES") or True):
            sys.exit("formula_throughput: the databases did not start")
        influx(url, "", f'CREATE DATABASE "{POWER}"')
        collection = mongo[DATABASE][COLLECTION]
        collection.drop()
        # formula None: SmartWatts runs on the host's network and reaches both databases there
        info = {"cpu": "bench", "formula": None, "facts": {"cpu_base_freq_mhz": 2100},
                "mongo_address": "127.0.0.1", "mongo_port": MONGO_PORT, "database": DATABASE,
                "collection": COLLECTION, "influxdb_address": "127.0.0.1", "influxdb_port": INFLUX_PORT,
                "influxdb_database": POWER, "sensor": {"dram": True}}
        conf = {"formula": {"cpu_error_threshold": 2.0, "default_base_freq_mhz": 2100, "extra_args": []},
                "sensor": {"frequency_ms": 1000}, "influxdb": {"version": 1}, "mongo": {"auth": False}}
        limits = yaml.safe_load((ROOT / "energy" / "defaults.yaml").read_text())["energy"]["formula"]["limits"]
        formula = run(client, images, "energy-bench-formula", "smartwatts",
                      command=components.formula_command(conf, info), network_mode="host",
                      environment=components.formula_environment(conf, info), mem_limit=str(limits["memory"]),
                      memswap_limit=str(limits["memory"]), pids_limit=int(limits["pids"]))
        started.append(formula)
        machines = Machines(containers)
        per_machine = containers + 1
        print(f"machine: {os.cpu_count()} cores; {containers} containers per simulated machine "
              f"({per_machine} reports/s each at 1 Hz); {step:.0f} s per step; SmartWatts limited to "
              f"{limits['memory']} and {limits['pids']} processes+threads")
        steady_rate, count = 0.0, 1
        while count <= most:
            machines.grow(count)
            rate = count * per_machine
            began = time.time()
            next_tick = began
            while time.time() - began < step:
                collection.insert_many(machines.tick())
                next_tick += 1
                time.sleep(max(0.0, next_tick - time.time()))
            waiting = collection.estimated_document_count()
            memory, _peak, pids = sample(formula)
            formula.reload()
            state = formula.attrs["State"]
            alive = state["Status"] == "running" and not state.get("OOMKilled") and not formula.attrs["RestartCount"]
            steady = alive and waiting <= 5 * rate  # under five seconds of reports waiting
            print(f"{count:3d} machines, {rate:5.0f} reports/s: {waiting:6d} waiting after {step:.0f} s, "
                  f"SmartWatts {memory / MIB:.0f} MiB, {pids} processes+threads -> "
                  f"{'steady' if steady else 'falling behind' if alive else 'killed: ' + str(state)}", flush=True)
            if not steady:
                break
            steady_rate, count = rate, count * 2
        if not steady_rate:
            logs = started[-1].logs(tail=20).decode(errors="replace")
            sys.exit(f"formula_throughput: not steady even with one machine; SmartWatts said:\n{logs}")
        print(f"SmartWatts 2.1.2 keeps up with {steady_rate:.0f} reports/s (on the MongoDB stand-in); with "
              f"{per_machine} reports/s per machine, {steady_rate / per_machine:.0f} machines; with the "
              f"{sizing.FORMULA_MARGIN:.0%} margin, max_sensors = {max(1, int(steady_rate * sizing.FORMULA_MARGIN // per_machine))}")
        print(f"(energy_core.sizing.FORMULA_REPORTS_PER_S is {sizing.FORMULA_REPORTS_PER_S:.0f})")
    finally:
        for container in started:
            container.remove(force=True)


if __name__ == "__main__":
    main()
