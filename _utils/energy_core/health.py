"""What "healthy" means for each container of the stack (the diagnosis ``energy.healthy`` acts on).

``diagnose`` reads Docker's inspection of the container and the container's ``health`` probe (see
``components``) and returns why it is unhealthy, or None. It only reads; recreating is the
state's job.
"""

import datetime
import re
import time
import urllib.parse
import urllib.request

from . import influx, mongo_wire

# a reason that starts so: the check itself could not run (the database it reads through does not
# answer); the container is reported unhealthy, but recreating it would not help
UNCHECKED = "cannot check: "
# a reason that starts so: the container's data volume is full; recreating it would not help either
FULL = "volume full: "
LEFT_AS_IS = (UNCHECKED, FULL)
MIN_FREE_MB = 16  # less free space than this on a data volume counts as full (InfluxDB's WAL segments are 10 MB)


# how hwpc-sensor says it cannot count an event of its config, before it exits (1.4 and later;
# 1.3 and earlier); a missing rapl PMU shows as its RAPL event refused
SENSOR_REFUSALS = (re.compile(r"Failed to add event '(?P<event>[^']+)' to group '(?P<group>[^']+)'"),
                   re.compile(r"event '(?P<event>[^']+)' is invalid or unsupported by this machine"))


def sensor_refusal(logs):
    """``{"event", "group"}`` when the sensor's output says it refused an event, else None."""
    for pattern in SENSOR_REFUSALS:
        match = pattern.search(logs or "")
        if match:
            return {"event": match.group("event"), "group": match.groupdict().get("group") or "core"}
    return None


def mongo_ping(address, timeout=3):
    """None when the MongoDB at ``address`` (host:port) answers ``{ping: 1}``, else why not: a
    mongod that accepts connections but is hung fails this."""
    try:
        reply = mongo_wire.command(address, "admin", {"ping": 1}, timeout)
    except (OSError, ValueError) as exc:
        return f"{address} does not answer a MongoDB ping ({exc})"
    if reply.get("ok") != 1:
        return f"{address} answered a MongoDB ping without ok: 1"
    return None


def http_ok(url, timeout=3):
    """(answers with 2xx, what was seen)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300, f"GET {url}: HTTP {resp.status}"
    except OSError as exc:
        return False, f"GET {url}: {exc}"


def backlog(probe, timeout=3):
    """Reports waiting in the formula's MongoDB collection (a ``count`` command)."""
    address, user, password, source = mongo_wire.parse_uri(probe["uri"])
    reply = mongo_wire.command(address, probe["database"], {"count": probe["collection"]}, timeout,
                               user=user, password=password, source=source)
    if reply.get("ok") != 1:
        raise OSError(f"count on {probe['database']}.{probe['collection']} failed: {reply.get('errmsg', reply)}")
    return int(reply.get("n", 0))


def newest_point(probe):
    """When this sensor's newest measured (rapl) point in InfluxDB was stamped (epoch seconds, by
    the clock of the sensor's host: the sensor stamps its reports, SmartWatts keeps the stamp);
    None when there is none."""
    sensor = str(probe["sensor"]).replace("\\", "\\\\").replace("'", "\\'")  # InfluxQL string literal
    query = f"SELECT last(power) FROM power_consumption WHERE sensor = '{sensor}' AND target = 'rapl'"
    series = influx.query(probe["url"], query, db=probe["database"], epoch="s").get("series", [])
    return series[0]["values"][0][0] if series else None


# --------------------------------------------------------------------------- freshness, whatever the clocks
# A sensor's points carry its host's clock; the check runs on another clock (another host, or a
# host whose clock was set since). Judged only by "now minus the newest point", a sensor whose
# clock is 90 s behind looks 90 s staler than it is: with a 60 s limit it would be recreated at
# every check, forever, and recreating it does not set its clock. So a sensor is stale when its
# newest point has not moved for max_age seconds of the checker's own clock: each check keeps the
# newest point it saw and when (``Seen``, per sensor). Only on a first look, with nothing kept, is
# the age by the clocks used, and then with SKEW_TOLERANCE on top of the limit.
SKEW_TOLERANCE = 300
SEEN = "energy/fresh.json"


def freshness(newest, now, max_age, seen):
    """``(reason, keep)``: why the sensor is stale (None: fresh, or not judged yet) and what to keep
    for the next check. ``newest``: its newest point's time (None: none); ``now``: the checker's
    clock; ``seen``: what the previous check kept (``{"newest", "at"}``) or None."""
    if newest is None:
        return "the sensor's newest measured power point is never (no point at all)", seen
    age = now - newest
    if seen and newest <= seen.get("newest", float("-inf")):
        still = now - seen.get("at", now)
        if still > max_age:
            return (f"the sensor's newest measured power point has not changed for {still:.0f} s of this host's "
                    f"clock (limit {max_age} s; it is stamped {age:.0f} s before this host's clock)"), seen
        return None, seen
    keep = {"newest": newest, "at": now}
    if not seen and age > max_age + SKEW_TOLERANCE:
        return (f"the sensor's newest measured power point is {age:.0f} s ago (limit {max_age} s, "
                f"+{SKEW_TOLERANCE} s for clocks that differ)"), keep
    return None, keep  # it moved since the last check (or is recent): fresh, whatever the clocks say


def seen_path(cachedir):
    import os  # pylint: disable=import-outside-toplevel

    return os.path.join(cachedir, SEEN)


class Seen(dict):
    """What each sensor's previous freshness check saw, kept in a file (mode 0600) and written
    back on each change. A file that cannot be read is started afresh: it only delays a verdict
    by one check."""

    def __init__(self, path):
        import json  # pylint: disable=import-outside-toplevel

        super().__init__()
        self.path = path
        try:
            with open(path, encoding="utf-8") as handle:
                found = json.load(handle)
            self.update(found if isinstance(found, dict) else {})
        except (OSError, ValueError):
            pass

    def __setitem__(self, key, value):
        import json  # pylint: disable=import-outside-toplevel

        from . import healing  # pylint: disable=import-outside-toplevel

        super().__setitem__(key, value)
        healing.write_atomic(self.path, json.dumps(dict(self), sort_keys=True), mode=0o600)


def stale(probe, seen=None, clock=time.time):
    """Why the sensor of ``probe`` (its ``fresh`` entry) is stale, or None (``freshness``)."""
    key = f"{probe['url']}|{probe['database']}|{probe['sensor']}"
    history = seen if seen is not None else {}
    reason, keep = freshness(newest_point(probe), clock(), probe["max_age"], history.get(key))
    if keep is not None and keep != history.get(key):
        history[key] = keep
    return reason


def age(info, now=None):
    """Seconds since the container started (Docker's ``State.StartedAt``), or None."""
    started = (info.get("State") or {}).get("StartedAt", "")
    try:
        when = datetime.datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return None
    return (now or time.time()) - when


def free_bytes(path):
    """Bytes an unprivileged writer may still use on the file system of ``path`` (statvfs)."""
    import os  # pylint: disable=import-outside-toplevel

    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def volume_full(probe, free_space):
    """The FULL reason when the container's volume has less than its minimum free, else None.
    ``free_space(volume)`` gives the free bytes (None when it cannot tell)."""
    space = probe.get("space")
    if not space or free_space is None:
        return None
    try:
        free = free_space(space["volume"])
    except (OSError, KeyError, TypeError, ValueError):
        return None
    if free is None or free >= space["min_free_mb"] * 2**20:
        return None
    return (f"{FULL}its volume {space['volume']} is full ({free / 2**20:.1f} MB free, under {space['min_free_mb']} MB): "
            f"recreating the container would not help. Fix: free space on its host, or {full_fix(space['volume'])}")


# what each database keeps, and so what keeps it smaller (the volume is named after its container)
FULL_FIXES = (("-mongo", "let its formula consume the sensor reports that wait there (see the formula's health: "
                         "its backlog) or give the volume room for energy:experiment's backlog"),
              ("-influxdb", "keep less data (energy:influxdb:retention)"),
              ("-grafana", "give the volume room (Grafana keeps its dashboards and sessions there)"))


def full_fix(volume):
    return next((fix for part, fix in FULL_FIXES if part in volume), "keep less data on it")


def image_missing(component, name, reason, image, minion):
    """What a heal says of an unhealthy container whose image is not on its host: it is left as
    it is (removing it first would turn an unhealthy container into a missing one, and its data
    volume stays either way), with the image's name and tag and how to bring it back."""
    repository, _, tag = image.rpartition(":") if ":" in image.rpartition("/")[2] else (image, "", "latest")
    return (f"{component} container {name} is unhealthy ({reason}) but its image {repository} (tag {tag}) is not "
            f"on {minion}: the container and its data are left as they are, and each heal says so again and recreates "
            f"nothing until the image is back. Fix: on {minion}, docker pull {image} (or docker load -i <archive of {image}>), then salt "
            f"{minion} state.apply energy.{component} (or wait for the next heal)")


def diagnose(info, probe, grace, free_space=None, seen=None, clock=time.time):
    """Why a container of the stack is unhealthy, or None when it is healthy.

    ``info`` is Docker's inspection of the container (None when the container is missing);
    ``probe`` its ``health`` entry. A container younger than ``grace`` seconds is only judged on
    running and answering (SmartWatts warms up for a minute). A check that reads through another
    service (the formula's backlog in its MongoDB, the sensor's points in InfluxDB) and cannot run
    gives a reason starting with UNCHECKED: that database is its own container's problem. A data
    volume with less than its minimum free (``free_space(volume)`` gives the free bytes) gives a
    reason starting with FULL. Neither is mended by a recreation (LEFT_AS_IS). A sensor's freshness
    is judged by ``freshness``: ``seen`` keeps what each check saw (``Seen``), ``clock`` is this
    host's."""
    if info is None:
        return "the container is missing"
    full = volume_full(probe, free_space)
    if full:
        return full
    status = (info.get("State") or {}).get("Status")
    if status != "running":
        return f"the container is {status}"
    if "mongo" in probe:
        reason = mongo_ping(probe["mongo"])
        if reason:
            return reason
    if "http" in probe:
        ok, detail = http_ok(probe["http"])
        if not ok:
            return f"{detail} (the service does not answer)"
    running_for = age(info)
    if running_for is not None and running_for < grace:
        return None
    if "backlog" in probe:
        try:
            waiting = backlog(probe["backlog"])
        except (OSError, ValueError) as exc:
            return f"{UNCHECKED}the formula's backlog in {probe['backlog']['uri'].rpartition('@')[2]} ({exc})"
        if waiting > probe["backlog"]["max"]:
            return f"{waiting} sensor reports wait in MongoDB: the formula is not consuming them"
    if "fresh" in probe:
        try:
            why = stale(probe["fresh"], seen, clock)
        except (OSError, RuntimeError, ValueError, KeyError, IndexError) as exc:
            return f"{UNCHECKED}the sensor's newest point in {probe['fresh']['url']} ({exc})"
        if why:
            try:
                refused = influx.refuses_points(probe["fresh"]["url"], probe["fresh"]["database"])
            except OSError as exc:
                refused = str(exc)
            if refused:  # the sensor is not the cause: its InfluxDB cannot store (a full volume)
                return (f"{UNCHECKED}InfluxDB at {probe['fresh']['url']} does not store points ({refused[:300]}); "
                        "recreating the sensor would not help")
            return why
    return None


# --------------------------------------------------------------------------- the last check of each container
# energy.healthy keeps what it last found per container (what `salt-run energy.summary` shows):
# ``{name: {"status": "healthy"|"recreated"|"unhealthy"|"held", "reason", "at"}}`` in the minion's
# cachedir, mode 0600 (a reason may quote a server's answer).
RECORDS = "energy/health.json"


def records_path(cachedir):
    import os  # pylint: disable=import-outside-toplevel

    return os.path.join(cachedir, RECORDS)


def read_records(path):
    import json  # pylint: disable=import-outside-toplevel

    try:
        with open(path, encoding="utf-8") as handle:
            found = json.load(handle)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def record(path, found, now):
    """Keep ``found`` (``{name: (status, reason)}``) as the last check of those containers at ``now``."""
    import json  # pylint: disable=import-outside-toplevel

    from . import healing  # pylint: disable=import-outside-toplevel

    kept = read_records(path)
    for name, (status, reason) in found.items():
        kept[name] = {"status": status, "reason": (reason or "")[:300], "at": round(now, 1)}
    healing.write_atomic(path, json.dumps(kept, sort_keys=True), mode=0o600)


def kept(node_part, heal):
    """What the light check (``energy.heal_check``) reads of a minion's part of the plan: each
    container's name, component, run arguments and probe, and ``energy:heal``."""
    return {"containers": [{k: c[k] for k in ("name", "component", "run", "health")} for c in node_part["containers"]],
            "heal": heal}
