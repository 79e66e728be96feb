"""STAND-IN for powerapi/hwpc-sensor, for machines without RAPL (this VM, CI).

It reads the hwpc-sensor JSON config file (``--config-file``, same keys as the real sensor: name,
frequency, output{type, uri, database, collection}, system{rapl, msr}, container{core}) and writes
real HWPC reports to the configured MongoDB: per tick one ``all`` document (groups rapl + msr) and
one document per simulated container (group core), all with the identical timestamp.

The machine it models: 1 socket x SIM_CPUS cpus at the base frequency, package power
SIM_IDLE_W + SIM_W_PER_CPU x busy cpus (+ noise), DRAM 2 W + 1 W x busy cpus when the config asks
for RAPL_ENERGY_DRAM. Containers (SIM_CONTAINERS="name:weight,...") share the busy cycles in
proportion to weights that wander independently; `{sensor}` in a name is replaced by the sensor's
name, so that each machine can have a container of its own (the formula's example app). The ground truth of every tick (package watts,
each container's share of the busy cycles) goes to the collection ``<collection>_truth``, because
SmartWatts in stream mode deletes the reports it reads.
"""

import argparse
import datetime
import json
import os
import random
import signal
import sys
import time

import pymongo

RAPL_UNIT = 2**32  # the sensor reports RAPL energy in Joules x 2^32


def parse_containers(spec):
    containers = []
    for item in spec.split(","):
        name, _, weight = item.strip().partition(":")
        containers.append((name, float(weight or 1)))
    return containers


def tick_documents(config, state, now, rng):
    """Build the documents of one tick; returns (reports, truth)."""
    period_s = config["frequency"] / 1000.0
    cpus = state["cpus"]
    hz = state["base_freq_mhz"] * 1e6
    rapl_events = config.get("system", {}).get("rapl", {}).get("events", [])
    core_events = config.get("container", {}).get("core", {}).get("events", [])

    # independent wander of each container's weight, bounded so that no share collapses
    for c in state["containers"]:
        c["weight"] = min(max(c["weight"] * (1 + rng.uniform(-0.03, 0.03)), c["base"] * 0.5), c["base"] * 1.5)
    total_weight = sum(c["weight"] for c in state["containers"])
    busy_cpus = state["load"] * (1 + rng.uniform(-0.05, 0.05))
    pkg_w = state["idle_w"] + state["w_per_cpu"] * busy_cpus + rng.gauss(0, 0.05)
    dram_w = 2.0 + 1.0 * busy_cpus

    busy_cycles = busy_cpus * hz * period_s  # summed over all cpus
    reports = []
    ts = now.replace(microsecond=(now.microsecond // 1000) * 1000)  # BSON keeps milliseconds
    rapl = {"RAPL_ENERGY_PKG": pkg_w * period_s * RAPL_UNIT, "time_enabled": 1, "time_running": 1}
    if "RAPL_ENERGY_DRAM" in rapl_events:
        rapl["RAPL_ENERGY_DRAM"] = dram_w * period_s * RAPL_UNIT
    per_cpu_busy = busy_cycles / cpus
    msr = {
        str(cpu): {
            "TSC": hz * period_s,
            "APERF": per_cpu_busy,  # APERF == MPERF: a fixed frequency, one model layer
            "MPERF": per_cpu_busy,
            "time_enabled": int(period_s * 1e9),
            "time_running": int(period_s * 1e9),
        }
        for cpu in range(cpus)
    }
    reports.append({
        "timestamp": ts, "sensor": config["name"], "target": "all",
        "groups": {"rapl": {"0": {"0": rapl}}, "msr": {"0": msr}},
    })
    truth = {"timestamp": ts, "sensor": config["name"], "package_w": pkg_w, "dram_w": dram_w, "shares": {}}
    for c in state["containers"]:
        share = c["weight"] / total_weight
        truth["shares"][c["name"]] = share
        cycles = busy_cycles * share / cpus
        per_cpu = {}
        for cpu in range(cpus):
            values = {}
            for event in core_events:
                if "REF_P" in event or "THREAD_P" in event or "CYCLES" in event:
                    values[event] = cycles
                elif "LLC" in event:
                    values[event] = cycles * 0.002
                else:  # instructions, uops
                    values[event] = cycles * 1.4
            values["time_enabled"] = int(period_s * 1e9)
            values["time_running"] = int(period_s * 1e9)
            per_cpu[str(cpu)] = values
        reports.append({
            "timestamp": ts, "sensor": config["name"], "target": c["name"],
            "groups": {"core": {"0": per_cpu}},
        })
    return reports, truth


# What the simulated machine's PMUs accept, as the real sensor finds out when it adds each event
# of its config to a perf group: the core events of the server families PowerAPI documents (or
# only SIM_CORE_EVENTS, comma-separated, when set), RAPL (without DRAM when SIM_RAPL_DRAM=0) and msr.
KNOWN_CORE = {"CPU_CLK_THREAD_UNHALTED:REF_P", "CPU_CLK_THREAD_UNHALTED:THREAD_P", "CPU_CLK_UNHALTED:REF_P",
              "CPU_CLK_UNHALTED:THREAD_P", "INSTRUCTIONS_RETIRED", "LLC_MISSES", "CYCLES_NOT_IN_HALT",
              "RETIRED_INSTRUCTIONS", "RETIRED_UOPS", "RETIRED_OPS"}


def refused_event(config):
    """(event, group) of the first event this machine cannot count, or None."""
    core = set(filter(None, os.environ.get("SIM_CORE_EVENTS", "").split(","))) or KNOWN_CORE
    rapl = {"RAPL_ENERGY_PKG"} | ({"RAPL_ENERGY_DRAM"} if os.environ.get("SIM_RAPL_DRAM", "1") != "0" else set())
    accepted = {"rapl": rapl, "msr": {"TSC", "APERF", "MPERF"}, "core": core}
    for scope in ("system", "container"):
        for group, spec in (config.get(scope) or {}).items():
            for event in spec.get("events", []):
                if event not in accepted.get(group, set()):
                    return event, group
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    args, _unknown = parser.parse_known_args(argv)
    with open(args.config_file, encoding="utf-8") as fh:
        config = json.load(fh)
    refused = refused_event(config)
    if refused:
        # hwpc-sensor 1.4's words (1.3 says "config: event '<e>' is invalid or unsupported by this machine")
        print(f"config: json: Failed to add event '{refused[0]}' to group '{refused[1]}'", file=sys.stderr, flush=True)
        sys.exit(1)
    output = config["output"]
    if output.get("type") != "mongodb":
        sys.exit(f"hwpc-sensor stand-in: output type {output.get('type')!r} unsupported, only mongodb")

    state = {
        "cpus": int(os.environ.get("SIM_CPUS", "4")),
        "base_freq_mhz": float(os.environ.get("SIM_BASE_FREQ_MHZ", "2100")),
        "load": float(os.environ.get("SIM_LOAD", "2.0")),
        "idle_w": float(os.environ.get("SIM_IDLE_W", "12")),
        "w_per_cpu": float(os.environ.get("SIM_W_PER_CPU", "9")),
        "containers": [
            {"name": name, "base": weight, "weight": weight}
            for name, weight in parse_containers(
                os.environ.get("SIM_CONTAINERS", "app-a:50,app-b:30,app-c:20").replace("{sensor}", config["name"]))
        ],
    }
    rng = random.Random(config["name"])
    client = pymongo.MongoClient(output["uri"], serverSelectionTimeoutMS=2000)
    db = client[output["database"]]
    reports_col, truth_col = db[output["collection"]], db[output["collection"] + "_truth"]

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    period = config["frequency"] / 1000.0
    print(f"hwpc-sensor stand-in {config['name']}: {len(state['containers'])} containers every "
          f"{config['frequency']} ms to {output['uri'].rpartition('@')[2]} {output['database']}.{output['collection']}",
          flush=True)  # the URI's credentials stay out of the log
    next_tick = time.time()
    while not stop:
        now = datetime.datetime.now(datetime.timezone.utc)
        reports, truth = tick_documents(config, state, now, rng)
        try:
            reports_col.insert_many(reports)
            truth_col.insert_one(truth)
        except pymongo.errors.PyMongoError as exc:  # the DB restarting must not kill the sensor
            print(f"hwpc-sensor stand-in: write failed: {exc}", flush=True)
        next_tick += period
        time.sleep(max(0.0, next_tick - time.time()))


if __name__ == "__main__":
    main()
