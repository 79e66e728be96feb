"""STAND-IN for powerapi/hwpc-sensor, for machines without RAPL nor a core PMU (this VM, CI).

It behaves like the hwpc-sensor release named by ``SIM_RELEASE`` (default 1.3.0; the tests and the
demo set it from the formula's pinned ``energy:sensor:tag``) in what the formula relies on:

- the same JSON config file (``--config-file``), parsed with that release's rules and refused with
  its messages (1.3.0: ``config: event '<E>' is invalid or unsupported by this machine``, unknown
  keys and wrong types named, a missing ``name``, no event group; 1.4.0 and later: the file must
  end in ``.json`` and be under 4096 bytes, ``config: json: Unknown parameter: '<k>'``,
  ``config: json: Failed to add event '<E>' to group '<G>'``, a ``cgroup_basepath`` that does not
  exist refused with ``Failed to get cgroup basepath``); it exits with status 1 on a refusal;
- ``sensor: failed to ping storage module`` and exit when MongoDB does not answer at start;
- the targets it finds like the real sensor: every leaf cgroup under ``cgroup_basepath``, checked
  every tick (1.3.0) or every 5 s (1.4.0 and later). 1.3.0 names a leaf under
  ``perf_event/docker/<64 hex>`` after its container (``"Name"`` in Docker's
  ``/var/lib/docker/containers/<id>/config.v2.json``) and skips other leaves under
  ``perf_event/docker``; every other leaf (all of them from 1.4.0, and under cgroup v2) is named by
  its path relative to the base path (``/system.slice/docker-<id>.scope``, ``/docker/<id>``);
- its reports: per tick an ``all`` document (groups of ``system``) and one per target (groups of
  ``container``), one timestamp; a ``MONITOR_ONE_CPU_PER_SOCKET`` group reports the first CPU of
  each socket in directory order (``/sys/devices/system/cpu``), the others every CPU; counters per
  tick; ``time_enabled``/``time_running`` cumulative since the target was found (1.3.0), per tick
  (1.4.0 and later, as 1.7.0 was seen doing).

Several simulated machines share one Docker engine here (the tests' minions, the demo's): a
container labelled ``energy.minion`` runs "on" that minion, so a stand-in leaves out the containers
labelled with another minion than its own (its own container's label, found through
``/proc/self/mountinfo``), as a real sensor never sees another machine's containers. Containers
without the label (the workloads) are on every machine. ``SIM_ALL_MACHINES=1`` turns this off.

What it cannot have, it simulates with a KNOWN truth: each target's load in busy CPUs is the label
``energy.sim.load`` of its container (``SIM_DEFAULT_LOAD``, 0.05, for unlabelled containers and
cgroups that are no container); per tick every load is jittered (a common factor 1 +- 5 % and one
of its own, 1 +- 3 %; ``SIM_JITTER=0`` turns both off). Package power = ``SIM_IDLE_W`` (12) +
``SIM_W_PER_CPU`` (9) x the sum of the loads (+ N(0, 0.05) W), DRAM 2 W + 1 W x the sum. The truth
of a target is its share of the loads; its watts that share of the package power (SmartWatts shares
the idle power by activity). Every tick's truth goes to ``<collection>_truth`` (SmartWatts in stream
mode deletes the reports it reads): ``{timestamp, sensor, package_w, dram_w, loads, shares, watts,
dram_watts}``, the last four keyed by target name.

Other knobs: ``SIM_CORE_EVENTS`` (comma-separated core events its PMU accepts; default the server
families' events), ``SIM_RAPL_DRAM=0`` (no DRAM domain), ``SIM_CPUS`` (N CPUs on one socket instead
of the machine's own), ``SIM_BASE_FREQ_MHZ``, ``SIM_FAIL_OPEN`` (comma-separated groups whose
events fail to open at run time, as a real sensor logs ``perf<target>: failed to setup perf for
group=...`` and stays up without that target's reports), ``SIM_PING_TIMEOUT_MS``.
"""

import datetime
import json
import os
import random
import re
import signal
import sys
import time

RAPL_UNIT = 2**32  # the sensor reports RAPL energy in Joules x 2^32
LOAD_LABEL = "energy.sim.load"
MACHINE_LABEL = "energy.minion"
DOCKER_CONTAINERS = "/var/lib/docker/containers"
CPU_DIR = "/sys/devices/system/cpu"
JSON_MAX_BYTES = 4096  # hwpc-sensor 1.4.0 and later read the config into a buffer of this size
DISCOVERY_MS_NEW = 5000  # cgroup discovery interval of 1.4.0 and later (1.3.0: every tick)
KNOWN_CORE = {"CPU_CLK_THREAD_UNHALTED:REF_P", "CPU_CLK_THREAD_UNHALTED:THREAD_P", "CPU_CLK_UNHALTED:REF_P",
              "CPU_CLK_UNHALTED:THREAD_P", "CPU_CLK_UNHALTED:REF_TSC", "INSTRUCTIONS_RETIRED", "LLC_MISSES",
              "CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS", "RETIRED_UOPS", "RETIRED_OPS"}
ONE_PER_SOCKET, ALL_PER_SOCKET = "MONITOR_ONE_CPU_PER_SOCKET", "MONITOR_ALL_CPU_PER_SOCKET"
STORAGES = ("null", "csv", "socket", "mongodb")


class Refused(Exception):
    """The sensor exits: ``args[0]`` are its log lines, ``(level, message)``."""


def release_of(text):
    found = re.match(r"v?(\d+)\.(\d+)", text or "")
    return (int(found.group(1)), int(found.group(2))) if found else (1, 3)


def log(level, message):
    """One line as czmq's zsys_* functions print it."""
    stamp = time.strftime("%y-%m-%d %H:%M:%S", time.gmtime())
    print(f"{level}: {stamp} {message}", file=sys.stderr if level == "E" else sys.stdout, flush=True)


def accepted_events():
    """{group: events} the simulated machine's PMUs accept (what perf and libpfm4 say on a real one)."""
    core = set(filter(None, os.environ.get("SIM_CORE_EVENTS", "").split(","))) or KNOWN_CORE
    rapl = {"RAPL_ENERGY_PKG"} | ({"RAPL_ENERGY_DRAM"} if os.environ.get("SIM_RAPL_DRAM", "1") != "0" else set())
    return {"rapl": rapl, "msr": {"TSC", "APERF", "MPERF"}, "core": core}


def _event_ok(group, event):
    # the sensor asks libpfm4 and perf; here a group named like no PMU accepts nothing
    return event in accepted_events().get(group, set())


# ---- hwpc-sensor 1.3.0: libbson types, config.c's rules and words ------------------------------

def _bson_type(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int32" if -2**31 <= value < 2**31 else "int64"
    return {str: "utf8", dict: "document", list: "array"}.get(type(value), "other")


def _groups_13(section, scope, groups):
    for name, spec in section.items():
        if not isinstance(spec, dict):
            raise Refused([("E", f"config: you must provide an event group name for {scope} events")])
        group = groups.setdefault(name, {"events": [], "type": ALL_PER_SOCKET})
        for key, value in spec.items():
            kind = _bson_type(value)
            if kind == "utf8" and key == "monitoring_type" and value in (ONE_PER_SOCKET, ALL_PER_SOCKET):
                group["type"] = value
            elif kind == "utf8" and key == "monitoring_type":
                raise Refused([("E", f"config: unknow value {value} for monitoring_type")])
            elif kind == "utf8":
                raise Refused([("E", f"config: unknow config option {key} in event sub section")])
            elif kind == "array":  # any key holding an array adds events
                for event in value:
                    if not isinstance(event, str):
                        raise Refused([("E", f"config: an event name, in event group {name}, is not a string")])
                    if not _event_ok(name, event):
                        raise Refused([("E", f"config: event '{event}' is invalid or unsupported by this machine")])
                    group["events"].append(event)
            else:
                raise Refused([("E", f"config: unknow type for : {key}")])


def _output_13(section, output):
    for key, value in section.items():
        kind = _bson_type(value)
        if kind == "utf8" and key == "type" and value not in STORAGES:
            raise Refused([("E", f"config: storage module '{value}' is invalid or disabled at compile time")])
        if kind == "utf8" and key in ("type", "database", "uri", "directory", "collection"):
            output["uri" if key == "directory" else key] = value
        elif kind == "utf8":
            raise Refused([("E", f"config: unknow string config option {key} in storage sub section")])
        elif kind == "int32":
            output["port"] = value
        else:
            raise Refused([("E", f"config: unknow config option {key} in storage sub section")])


def parse_13(doc):
    """The config as hwpc-sensor 1.3.0 reads it (src/config.c), or Refused."""
    config = {"frequency": 1000, "cgroup_basepath": "/sys/fs/cgroup", "name": None,
              "output": {"type": "csv"}, "system": {}, "container": {}}
    rules = {"bool": ("verbose",), "int32": ("frequency",), "utf8": ("cgroup_basepath", "name")}
    words = {"bool": "invalid boolean value", "int32": "invalid integer value", "utf8": "invalid string value"}
    for key, value in doc.items():
        kind = _bson_type(value)
        if kind in rules and key in rules[kind]:
            config[key] = value
        elif kind in rules:
            raise Refused([("E", f"config: {words[kind]} for {key}")])
        elif kind == "document" and key in ("system", "container"):
            _groups_13(value, key, config[key])
        elif kind == "document" and key == "output":
            _output_13(value, config["output"])
        elif kind == "document":
            raise Refused([("E", f"config: invalid sub category {key}")])
        else:
            raise Refused([("E", f"config: invalid value for {key}")])
    return config


def validate_13(config):
    out = config["output"]
    if not config["name"]:
        return [("I", "config: you must provide a sensor name")]
    if not config["system"] and not config["container"]:
        return [("E", "config: you must provide event(s) to monitor")]
    if out["type"] == "csv" and not out.get("uri"):
        return [("E", "config: the CSV storage module requires the 'U' flag to be set")]
    if out["type"] == "mongodb" and not all(out.get(k) for k in ("uri", "database", "collection")):
        return [("E", "config: the MongoDB storage module requires the 'U', 'D' and 'C' flags to be set")]
    return []


# ---- hwpc-sensor 1.4.0 and later: json-c, config_json.c's rules and words ------------------------

def _json_int(value):
    """json_object_get_int: numbers, booleans and numeric strings give an int, anything else 0."""
    if isinstance(value, (bool, int, float)):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+", value):
        return int(value)
    return 0


def _groups_new(section, groups):
    for name, spec in (section.items() if isinstance(section, dict) else ()):
        group = {"events": [], "type": ALL_PER_SOCKET}
        for key, value in (spec.items() if isinstance(spec, dict) else ()):
            if key.lower() == "events":
                if not isinstance(value, list):
                    raise Refused([("E", f"config: json: Invalid 'events' field type for group '{name}'")])
                for event in value:
                    if not _event_ok(name, str(event)):
                        raise Refused([("E", f"config: json: Failed to add event '{event}' to group '{name}'")])
                    group["events"].append(str(event))
            elif key.lower() in ("monitoring_type", "mode"):
                mode = str(value).upper()
                if mode.removeprefix("MONITOR_") not in ("ONE_CPU_PER_SOCKET", "ALL_CPU_PER_SOCKET"):
                    raise Refused([("E", f"config: json: Invalid monitoring mode '{value}' for events group '{name}'")])
                group["type"] = "MONITOR_" + mode.removeprefix("MONITOR_")
            else:
                raise Refused([("E", f"config: json: Invalid parameter '{key}' for '{name}' events group")])
        groups[name] = group


def _output_new(section, output):
    if not isinstance(section, dict) or "type" not in section:
        raise Refused([("E", "config: json: The storage module 'type' field is required")])
    if section["type"] not in STORAGES:
        raise Refused([("E", f"config: json: Storage module '{section['type']}' is invalid or disabled at compile time")])
    allowed = {"mongodb": ("uri", "database", "collection"), "csv": ("outdir",), "socket": ("host", "port")}
    for key, value in section.items():
        if key != "type" and key not in allowed.get(section["type"], ()):
            words = {"mongodb": "MongoDB", "csv": "CSV", "socket": "Socket", "null": "Null"}[section["type"]]
            raise Refused([("E", f"config: json: Invalid parameter '{key}' for {words} storage module")])
        output[key] = value


def parse_new(doc):
    """The config as hwpc-sensor 1.4.0 and later read it (src/config_json.c), or Refused."""
    config = {"frequency": 1000, "cgroup_basepath": "/sys/fs/cgroup", "name": os.uname().nodename,
              "output": {"type": "unknown"}, "system": {}, "container": {}}
    for key, value in doc.items():
        low = key.lower()
        if low == "verbose":
            if _json_int(value) < 0:
                raise Refused([("E", "config: json: Verbose value is invalid (boolean or positive integer expected)")])
        elif low in ("name", "sensor-name"):
            config["name"] = str(value)
        elif low in ("cgroup_basepath", "cgroup-basepath"):
            config["cgroup_basepath"] = str(value)
        elif low in ("frequency", "perf-sampling-interval"):
            config["frequency"] = _json_int(value)
            if config["frequency"] <= 0:
                raise Refused([("E", "config: json: Perf sampling interval value is invalid (positive integer expected)")])
        elif low == "cgroup-discovery-interval":
            if _json_int(value) <= 0:
                raise Refused([("E", "config: json: Cgroup discovery interval value is invalid (positive integer "
                                     "expected)")])
        elif low in ("output", "storage"):
            _output_new(value, config["output"])
        elif low in ("system", "global", "container", "cgroups"):
            _groups_new(value, config["system" if low in ("system", "global") else "container"])
        else:
            raise Refused([("E", f"config: json: Unknown parameter: '{key}'")])
    return config


def validate_new(config):
    base, out = config["cgroup_basepath"], config["output"]
    if not config["name"]:
        return [("E", "config: You must provide a sensor name")]
    if not os.path.exists(base):
        return [("E", f"config: Failed to get cgroup basepath ({base}) information: No such file or directory")]
    if not (os.path.exists(os.path.join(base, "cgroup.procs")) or os.path.exists(os.path.join(base, "tasks"))):
        return [("E", f"config: Invalid cgroup basepath: {base}")]
    if not config["system"] and not config["container"]:
        return [("E", "config: You must provide event(s) to monitor")]
    for group, spec in {**config["system"], **config["container"]}.items():
        if not spec["events"]:
            return [("E", f"config: Events group '{group}' is empty")]
    if out["type"] == "mongodb" and not all(out.get(k) for k in ("uri", "database", "collection")):
        return [("E", "config: MongoDB storage module requires the 'uri', 'database' and 'collection' parameters "
                      "to be set")]
    return []


def read_config(path, release):
    """The parsed config, or Refused with the release's log lines."""
    new = release >= (1, 4)
    try:
        size = os.path.getsize(path)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        what = "config: json: Failed to open configuration file" if new else f'config: Failed to open config file "{path}"'
        raise Refused([("E", f"{what}: {exc.strerror}")]) from None
    fail = "config: failed to parse the provided command-line arguments" if new else \
        "config: failed to parse the provided config file"
    if new and not os.path.splitext(path)[1]:
        raise Refused([("E", "config: cli: Missing extension to configuration file"), ("E", fail)])
    if new and os.path.splitext(path)[1].lower() != ".json":
        raise Refused([("E", f"config: cli: Unsupported configuration file format: {os.path.splitext(path)[1]}"),
                       ("E", fail)])
    if new and size >= JSON_MAX_BYTES:
        raise Refused([("E", f"config: json: Configuration file size is too big (current: {size // 1024} KB, max: "
                             f"{JSON_MAX_BYTES // 1024} KB)"), ("E", fail)])
    try:
        doc = json.loads(text)
    except ValueError as exc:
        word = "config: json: Failed to parse json" if new else "config: Error in json parsing:\n"
        raise Refused([("E", f"{word}: {exc}")]) from None
    try:
        config = (parse_new if new else parse_13)(doc if isinstance(doc, dict) else {})
    except Refused as refused:
        more = [("E", "config: json: Failed to process the given configuration file")] if new else []
        raise Refused(refused.args[0] + more + [("E", fail)]) from None
    problems = (validate_new if new else validate_13)(config)
    if problems:
        raise Refused(problems + [("E", "config: failed to validate config")])
    return config


# ---- targets: the cgroup hierarchy, as target.c walks it -----------------------------------------

def leaf_cgroups(base):
    """Every directory under ``base`` (itself included, as 1.3.0's fts walk does) without a
    subdirectory, in walk order."""
    leaves = []
    for path, dirs, _files in os.walk(base, followlinks=True):
        if not dirs:
            leaves.append(path)
    return leaves


DOCKER_V1 = re.compile(r"perf_event/docker/([a-f0-9]{64})$")
CONTAINER_ID = re.compile(r"(?:docker[-/])([a-f0-9]{64})(?:\.scope)?$")


def container_config(container_id):
    """(name, labels) of a Docker container from its config.v2.json, or (None, {})."""
    try:
        with open(os.path.join(DOCKER_CONTAINERS, container_id, "config.v2.json"), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None, {}
    return (data.get("Name") or "").lstrip("/") or None, (data.get("Config") or {}).get("Labels") or {}


def own_machine():
    """The minion this stand-in runs for: label ``energy.minion`` of its own container (Docker
    mounts /etc/hostname from /var/lib/docker/containers/<id>/), or None."""
    if os.environ.get("SIM_ALL_MACHINES") == "1":
        return None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            found = re.search(r"containers/([0-9a-f]{64})/", fh.read())
    except OSError:
        return None
    return container_config(found.group(1))[1].get(MACHINE_LABEL) if found else None


def discover(base, release, machine=None):
    """{cgroup path: (target name, container labels)} of the targets this release monitors; with
    ``machine``, not the containers labelled as another minion's."""
    targets = {}
    for path in leaf_cgroups(base):
        if release >= (1, 4) and path == base:
            continue  # 1.4.0 and later never report the walk's root
        relative = path[len(base):]
        found = CONTAINER_ID.search(path)
        name, labels = container_config(found.group(1)) if found else (None, {})
        if machine and labels.get(MACHINE_LABEL, machine) != machine:
            continue  # another simulated machine's container
        if release < (1, 4):
            if "perf_event/docker" in path and not DOCKER_V1.search(path):
                continue  # a Docker cgroup that is no container's: target_docker_validate says no
            if DOCKER_V1.search(path) and name:
                relative = name
            elif "perf_event/system" in path or "perf_event/kernel" in path:
                relative = "system" if "perf_event/system" in path else "kernel"
        targets[path] = (relative, labels)
    return targets


def load_of(labels):
    try:
        return max(0.0, float(labels[LOAD_LABEL]))
    except (KeyError, TypeError, ValueError):
        return float(os.environ.get("SIM_DEFAULT_LOAD", "0.05"))


def cpu_topology():
    """{socket: [cpu ids in directory order]}, the machine's own (hwinfo.c reads the same
    directory), or SIM_CPUS cpus on socket 0."""
    if os.environ.get("SIM_CPUS"):
        return {"0": [str(n) for n in range(int(os.environ["SIM_CPUS"]))]}
    sockets = {}
    for entry in os.listdir(CPU_DIR):  # readdir order, as the real sensor sees it
        if re.fullmatch(r"cpu\d+", entry):
            try:
                with open(os.path.join(CPU_DIR, entry, "topology", "physical_package_id"), encoding="ascii") as fh:
                    socket = fh.read().strip()
            except OSError:
                continue
            sockets.setdefault(socket, []).append(entry[3:])
    return sockets or {"0": ["0"]}


# ---- reports ------------------------------------------------------------------------------------

def event_value(event, cycles, joules, dram_joules):
    """A counter's value over one tick: cycles, instructions and misses from the busy cycles, RAPL
    energies in Joules x 2^32."""
    if event == "RAPL_ENERGY_PKG":
        return joules * RAPL_UNIT
    if event == "RAPL_ENERGY_DRAM":
        return dram_joules * RAPL_UNIT
    if event.startswith("RAPL_"):
        return 0.0
    if "LLC" in event:
        return cycles * 0.002
    if "INSTRUCTIONS" in event or "UOPS" in event or "OPS" in event:
        return cycles * 1.4
    return cycles


def group_values(spec, topology, per_cpu, cumulative_ns):
    """{socket: {cpu: {event: value, time_enabled, time_running}}} of one group; ``per_cpu(socket,
    cpu, cpus of the socket)`` gives (cycles, joules, dram joules) of that CPU over the tick."""
    values = {}
    for socket, cpus in topology.items():
        chosen = cpus[:1] if spec["type"] == ONE_PER_SOCKET else cpus
        values[socket] = {}
        for cpu in chosen:
            cycles, joules, dram = per_cpu(socket, cpu, chosen)
            counters = {event: event_value(event, cycles, joules, dram) for event in spec["events"]}
            counters.update(time_enabled=cumulative_ns, time_running=cumulative_ns)
            values[socket][cpu] = counters
    return values


def tick_truth(targets, rng, jitter):
    """The jittered load of every target this tick, and the machine's package and DRAM watts."""
    common = 1 + rng.uniform(-0.05, 0.05) * jitter
    loads = {name: load * common * (1 + rng.uniform(-0.03, 0.03) * jitter) for name, load in targets.items()}
    busy = sum(loads.values())
    idle_w, w_per_cpu = float(os.environ.get("SIM_IDLE_W", "12")), float(os.environ.get("SIM_W_PER_CPU", "9"))
    package_w = idle_w + w_per_cpu * busy + (rng.gauss(0, 0.05) if jitter else 0.0)
    return loads, package_w, 2.0 + 1.0 * busy


def tick_documents(config, machine, targets, now, rng):
    """The reports and the truth of one tick. ``machine``: {topology, hz, ticks_ns{target}} (the
    cumulative times are advanced here); ``targets``: {target name: load in busy CPUs}."""
    period_s = config["frequency"] / 1000.0
    topology, hz = machine["topology"], machine["hz"]
    ncpus = sum(len(c) for c in topology.values())
    ts = now.replace(microsecond=(now.microsecond // 1000) * 1000)  # BSON keeps milliseconds
    loads, package_w, dram_w = tick_truth(targets, rng, machine.get("jitter", 1.0))
    busy = sum(loads.values())
    total = busy or 1.0
    truth = {"timestamp": ts, "sensor": config["name"], "package_w": package_w, "dram_w": dram_w,
             "loads": loads, "shares": {t: v / total for t, v in loads.items()},
             "watts": {t: package_w * v / total for t, v in loads.items()},
             "dram_watts": {t: dram_w * v / total for t, v in loads.items()}}
    reports = []
    scopes = [("all", config["system"], busy)] if config["system"] else []
    scopes += [(name, config["container"], load) for name, load in loads.items()] if config["container"] else []
    for target, groups, load in scopes:
        # 1.3.0 resets the counts each tick but not the times: cumulative; 1.7.0's are per tick
        tick_ns = int(period_s * 1e9)
        machine["ticks_ns"][target] = (machine["ticks_ns"].get(target, 0) if machine.get("cumulative", True) else 0) \
            + tick_ns

        def per_cpu(_socket, _cpu, chosen, load=load):
            share = 1.0 / len(topology) / len(chosen)  # a socket's energy over the CPUs reporting it
            return load * hz * period_s / ncpus, package_w * period_s * share, dram_w * period_s * share

        reports.append({"timestamp": ts, "sensor": config["name"], "target": target, "groups": {
            name: group_values(spec, topology, per_cpu, machine["ticks_ns"][target]) for name, spec in groups.items()}})
    return reports, truth


# ---- the process -----------------------------------------------------------------------------------

def open_failures(config, targets, reported, release):
    """Drop the targets whose groups fail to open (SIM_FAIL_OPEN), logging it once, as a real
    sensor's monitoring actor does before it gives up on that target."""
    failing = set(filter(None, os.environ.get("SIM_FAIL_OPEN", "").split(",")))
    topology = cpu_topology()
    socket = sorted(topology)[0]
    for target in list(targets):
        bad = sorted(failing & set(config["system" if target == "all" else "container"]))
        if bad:
            if target not in reported:
                group = config["system" if target == "all" else "container"][bad[0]]
                if release >= (1, 4):  # as 1.7.0 was seen saying it
                    log("E", f"perf<{target}>: failed opening perf event for group={bad[0]} cpu={topology[socket][0]} "
                             f"event={(group['events'] or ['?'])[0]} errno=1")
                    log("E", f"perf<{target}>: cannot initialize perf monitoring")
                else:
                    log("E", f"perf<{target}>: failed to setup perf for group={bad[0]} pkg={socket} "
                             f"cpu={topology[socket][0]}")
                reported.add(target)
            del targets[target]


def connect(output):
    """The report and truth collections, or exit as the sensor does when MongoDB does not answer."""
    import pymongo  # pylint: disable=import-outside-toplevel

    timeout = int(os.environ.get("SIM_PING_TIMEOUT_MS", "3000"))
    client = pymongo.MongoClient(output["uri"], serverSelectionTimeoutMS=timeout, connectTimeoutMS=timeout)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as exc:
        # the server's address and the error's kind only: the URI's credentials stay out of the log
        where = output["uri"].split("://", 1)[-1].rpartition("@")[2].split("/")[0].split("?")[0]
        log("E", f"mongodb: failed to ping mongodb server: {type(exc).__name__} ({where})")
        log("E", "sensor: failed to ping storage module")
        sys.exit(1)
    db = client[output["database"]]
    return db[output["collection"]], db[output["collection"] + "_truth"]


def setup(argv):
    """(release, config), or exit 1 with the release's refusal."""
    release = release_of(os.environ.get("SIM_RELEASE", "1.3.0"))
    log("I", f"build: version {os.environ.get('SIM_RELEASE', '1.3.0')} (rev: stand-in)")
    path = argv[argv.index("--config-file") + 1] if "--config-file" in argv[:-1] else None
    if path is None:
        log("E", "stand-in: only --config-file <path> is supported")
        sys.exit(1)
    try:
        config = read_config(path, release)
    except Refused as refused:
        for level, message in refused.args[0]:
            log(level, message)
        sys.exit(1)
    if config["output"].get("type") != "mongodb":
        log("E", f"stand-in: output type {config['output'].get('type')!r} unsupported, only mongodb")
        sys.exit(1)
    return release, config


def main(argv=None):
    release, config = setup(list(sys.argv[1:] if argv is None else argv))
    reports_col, truth_col = connect(config["output"])
    log("I", "sensor: configuration is valid, starting monitoring...")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    machine = {"topology": cpu_topology(), "hz": float(os.environ.get("SIM_BASE_FREQ_MHZ", "2100")) * 1e6,
               "ticks_ns": {}, "jitter": float(os.environ.get("SIM_JITTER", "1")), "cumulative": release < (1, 4)}
    rng, failed = random.Random(config["name"]), set()
    period = config["frequency"] / 1000.0
    found, found_at, next_tick, own = {}, 0.0, time.time(), own_machine()
    if own:
        log("I", f"stand-in: machine {own}: containers labelled {MACHINE_LABEL} as another minion's are left out")
    while not stop:
        if release < (1, 4) or time.time() - found_at >= DISCOVERY_MS_NEW / 1000.0:
            found, found_at = discover(config["cgroup_basepath"], release, own), time.time()
        targets = {name: load_of(labels) for name, labels in found.values()}
        if config["system"]:
            targets["all"] = 0.0
        open_failures(config, targets, failed, release)
        has_all = targets.pop("all", None) is not None
        reports, truth = tick_documents(config if has_all else dict(config, system={}), machine, targets,
                                        datetime.datetime.now(datetime.timezone.utc), rng)
        for target in set(machine["ticks_ns"]) - set(targets) - {"all"}:
            del machine["ticks_ns"][target]  # a target found again starts its times anew
        write(reports_col, truth_col, reports, truth)
        next_tick += period
        time.sleep(max(0.0, next_tick - time.time()))


def write(reports_col, truth_col, reports, truth):
    import pymongo  # pylint: disable=import-outside-toplevel

    try:
        if reports:
            reports_col.insert_many(reports)
        truth_col.insert_one(truth)
    except pymongo.errors.PyMongoError as exc:  # the real sensor logs a failed insert and goes on
        log("E", f"mongodb: failed insert: {type(exc).__name__}")


if __name__ == "__main__":
    main()
