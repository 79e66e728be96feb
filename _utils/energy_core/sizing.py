"""How big the databases grow, and how many sensors one SmartWatts keeps up with, from the
experiment the pillar describes (``energy:experiment``) and constants measured on this project's
benchmarks (README: Sizing). Pure: the plan and ``energy.sizing`` use it.

- InfluxDB holds SmartWatts' output for the retention: per machine and per tick, one point per
  target (each container, plus ``rapl`` and ``global``) and per scope (``cpu``, and ``dram`` when
  measured), for each socket.
- MongoDB holds the sensor reports a formula has not read yet: per machine and per tick, one report
  per target (each container, plus ``all``). It must hold ``buffer`` of them (the longest formula
  outage to survive); a TTL index drops older ones, so a dead formula cannot fill the disk.
"""

import math
import os

from .checks import duration_seconds

# measured by benchmarks/sizing.py (InfluxDB: the real InfluxDB 1.6 holding real SmartWatts output,
# once its cache is written to TSM files, marginal bytes per point and the files it starts with;
# MongoDB: the stand-in's volume growth per real HWPC report) and by
# benchmarks/formula_throughput.py (real SmartWatts 2.1.2); machine and figures in the README
BYTES_PER_POINT = 8.1
BYTES_PER_REPORT = 1750.0
FIXED_INFLUXDB_BYTES = 64 * 2**20    # the series files InfluxDB 1.6 preallocates (67 MB measured)
FIXED_MONGO_BYTES = 1 * 2**20
FORMULA_REPORTS_PER_S = 168.0        # reports per second one SmartWatts read with a steady delay under its default limits
FORMULA_MARGIN = 0.5                 # the default max_sensors uses half of it
RETENTION_MARGIN = 0.25              # the default retention: the duration plus a quarter


def _experiment(conf):
    experiment = conf.get("experiment") if isinstance(conf.get("experiment"), dict) else {}
    return {"duration": experiment.get("duration") or "14d", "containers": experiment.get("containers") or 20,
            "buffer": experiment.get("buffer") or "1h"}


def buffer_seconds(conf):
    """How long MongoDB keeps a report a formula has not read (its TTL index): energy:experiment:buffer."""
    return int(duration_seconds(_experiment(conf)["buffer"]))


def ticks_per_second(conf):
    return 1000.0 / conf["sensor"]["frequency_ms"]


def reports_per_second(conf):
    """HWPC reports one sensor writes per second (one per container, plus ``all``)."""
    return (_experiment(conf)["containers"] + 1) * ticks_per_second(conf)


def default_max_sensors(conf):
    """The sensors one SmartWatts reads by default: FORMULA_REPORTS_PER_S with its margin, divided
    by what one sensor writes."""
    return max(1, int(FORMULA_REPORTS_PER_S * FORMULA_MARGIN // reports_per_second(conf)))


def retention(conf):
    """``energy:influxdb:retention``, or, unset, the experiment's duration plus RETENTION_MARGIN
    (rounded up to whole hours, at least one)."""
    given = (conf.get("influxdb") or {}).get("retention")
    if given:
        return given
    seconds = duration_seconds(_experiment(conf)["duration"]) * (1 + RETENTION_MARGIN)
    return f"{max(1, math.ceil(seconds / 3600))}h"


def influxdb_bytes(conf, machines):
    """The expected size of an InfluxDB volume holding the power of ``machines``
    (``[{"dram": bool, "sockets": int}]``) over the retention."""
    kept = duration_seconds(retention(conf)) or duration_seconds(_experiment(conf)["duration"])
    targets = _experiment(conf)["containers"] + 2
    per_second = sum(targets * (2 if m.get("dram") else 1) * (m.get("sockets") or 1) for m in machines) \
        * ticks_per_second(conf)
    return int(FIXED_INFLUXDB_BYTES + per_second * kept * BYTES_PER_POINT)


def mongo_bytes(conf, machines):
    """The expected size of a MongoDB volume holding ``buffer`` of the reports of ``machines``."""
    buffer = duration_seconds(_experiment(conf)["buffer"])
    return int(FIXED_MONGO_BYTES + len(machines) * reports_per_second(conf) * buffer * BYTES_PER_REPORT)


def estimate(conf, full_plan):
    """``{host: {volume: bytes}}`` for the MongoDB and InfluxDB volumes of the plan."""
    machines = {m: {"dram": g["sensor"]["dram"], "sockets": (g["facts"] or {}).get("cpu_sockets") or 1}
                for g in full_plan["groups"] for m in g["sensors"]}
    result = {}
    for store in full_plan["stores"]:
        size = (mongo_bytes if store["component"] == "mongo" else influxdb_bytes)(
            conf, [machines[m] for m in store["sensors"] if m in machines])
        result.setdefault(store["host"], {})[store["volume"]] = size
    return result


def human(size):
    """``size`` bytes as people read them, in powers of 1024 (KiB, MiB, ...); ``-`` for None."""
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def report(conf, full_plan, max_sensors):
    """What ``salt-call energy.sizing`` shows: each database volume's expected size per host (and
    the total), with the inputs and constants it comes from, and the sensors per SmartWatts."""
    sizes = estimate(conf, full_plan)
    return {
        "hosts": {host: {volume: human(size) for volume, size in sorted(volumes.items())}
                  for host, volumes in sorted(sizes.items())},
        "total": {host: human(sum(volumes.values())) for host, volumes in sorted(sizes.items())},
        "retention": retention(conf),
        "max_sensors": max_sensors,
        "experiment": dict(conf["experiment"]),
        "frequency_ms": conf["sensor"]["frequency_ms"],
        "constants": {"bytes_per_point": BYTES_PER_POINT, "bytes_per_report": BYTES_PER_REPORT,
                      "formula_reports_per_s": FORMULA_REPORTS_PER_S},
    }


def space_problem(minion, sizes, existing, docker_root):
    """Why ``minion`` lacks the room its new database volumes need, or None. ``sizes``: its
    volumes' expected sizes; ``existing``: the volumes Docker has (they grow in place);
    ``docker_root()``: Docker's data root and its free bytes, asked only when a volume is new."""
    new = {volume: size for volume, size in sizes.items() if volume not in existing}
    if not new:
        return None
    root, free = docker_root()
    need = sum(new.values())
    if need <= free:
        return None
    return (f"energy:experiment: {minion} needs {human(need)} for its new database volumes "
            f"({', '.join(f'{v} {human(n)}' for v, n in sorted(new.items()))}) and {root} has {human(free)} free. "
            "Fix: a shorter energy:experiment:duration or energy:influxdb:retention, a longer "
            "energy:sensor:frequency_ms, fewer energy:experiment:containers, another energy:strategy or other "
            "database hosts, or energy:experiment:check_space: false")


def used_bytes(path):
    """Disk use of the files under ``path`` (what ``du`` counts), or None when it cannot be read."""
    if not path or not os.path.isdir(path):
        return None
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total
