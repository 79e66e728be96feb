"""The probes of the health checks and what their answers mean, for each container of the stack.

The probes (``mongo_ping``, ``http_ok``, ``backlog``, ``newest_point``, ``recent_targets``) read a
service over the network; the Salt layer runs the ones ``verdict`` asks for, once each. The rest is
pure: a sensor's freshness whatever the clocks (``freshness``), a full volume, the record of the
last check of each container.
"""

import datetime
import time
import urllib.parse
import urllib.request

from . import influx, mongo_wire, sensor_faults

# a reason that starts so: the check itself could not run (the database it reads through does not
# answer); the container is reported unhealthy, but recreating it would not help
UNCHECKED = "cannot check: "
# a reason that starts so: the container's data volume is full; recreating it would not help either
FULL = "volume full: "
LEFT_AS_IS = (UNCHECKED, FULL)
MIN_FREE_MB = 16  # less free space than this on a data volume counts as full (InfluxDB's WAL segments are 10 MB)


def sensor_refusal(logs, groups=None):
    """``{"event", "group", "kind"}`` when the sensor's output says it refused an event, else None
    (``sensor_faults.refusal``: 1.3.0 names no group, the config's ``groups`` then do)."""
    return sensor_faults.refusal(logs, groups)


def watch_left(seconds, up_for):
    """How long ``energy_heal.stays_up`` still watches a container up for ``up_for`` seconds (None:
    unknown) until it has run ``seconds``: a restart moves StartedAt, so up that long means up all
    along."""
    return float(seconds) if up_for is None else min(float(seconds), max(0.0, float(seconds) - up_for))


def same_run(info, restarts, started):
    """Whether Docker's ``info`` still shows the run that was watched: running, no restart since
    (``restarts``), the same ``StartedAt``."""
    state = info.get("State") or {}
    return state.get("Status") == "running" and info.get("RestartCount", 0) <= restarts and \
        state.get("StartedAt") == started


def not_up_comment(component, name, minion, status, restarts, logs):
    """What ``energy_heal.stays_up`` says of a container that did not stay up: its status (or
    gone), its restarts meanwhile and the end of its output."""
    return (f"{component} container {name} on {minion} does not stay up ({status or 'gone'}, "
            f"{restarts} restart(s)); its last output:\n{logs.strip()[-1500:]}")


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


def recent_targets(probe):
    """The targets of this sensor's power points of the last ``max_age`` seconds (by InfluxDB's
    clock): what SmartWatts made of the sensor's reports, ``rapl`` and ``global`` beside the
    containers it counted."""
    sensor = str(probe["sensor"]).replace("\\", "\\\\").replace("'", "\\'")
    query = (f"SELECT last(power) FROM power_consumption WHERE sensor = '{sensor}' "
             f"AND time > now() - {int(probe['max_age'])}s GROUP BY target")
    series = influx.query(probe["url"], query, db=probe["database"], epoch="s").get("series", [])
    return sorted({(s.get("tags") or {}).get("target", "") for s in series} - {""})


NETWORK_FACTS = ("mongo", "http", "backlog", "newest", "refuses", "targets")


def network_fact(name, probe):
    """The answer of network probe ``name`` (one of NETWORK_FACTS) of a container's ``probe``, as
    ``verdict`` reads it: a probe that cannot run gives ``{"error": ...}`` (``refuses``: the error's
    text, InfluxDB does not store)."""
    fresh = probe.get("fresh") or {}
    try:
        if name == "mongo":
            return mongo_ping(probe["mongo"])
        if name == "http":
            return list(http_ok(probe["http"]))
        if name == "backlog":
            return backlog(probe["backlog"])
        if name == "newest":
            return newest_point(fresh)
        if name == "targets":
            return recent_targets(fresh)
    except (OSError, RuntimeError, ValueError, KeyError, IndexError) as exc:
        return {"error": str(exc)}
    if name == "refuses":
        try:
            return influx.refuses_points(fresh["url"], fresh["database"])
        except OSError as exc:
            return str(exc)
    raise KeyError(f"not a network probe: {name}")


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
        # kept as not moving for longer than the limit already: the next check finds it stale too
        return (f"the sensor's newest measured power point is {age:.0f} s ago (limit {max_age} s, "
                f"+{SKEW_TOLERANCE} s for clocks that differ)"), {"newest": newest, "at": now - max_age - 1}
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


def full_reason(space, free):
    """The FULL reason when volume ``space`` (``{"volume", "min_free_mb"}``) has ``free`` bytes
    (None: cannot tell), under its minimum, else None."""
    if not space or free is None or free >= space["min_free_mb"] * 2**20:
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


# --------------------------------------------------------------------------- the last check of each container
# energy_heal.healthy keeps what it last found per container (what `salt-run energy.summary` shows):
# ``{name: {"status": "healthy"|"recreated"|"unhealthy"|"held", "reason", "at"}}`` in the minion's
# cachedir, mode 0600 (a reason may quote a server's answer).
RECORDS = "energy/health.json"
# what the light check reads of this minion's part of the plan (``kept``), written by energy.heal
NODE_KEPT = "energy/node.json"
# fired when a check leaves an unhealthy container as it is (recreating it would not help), once
# per new reason: energy/unhealthy/<component>
UNHEALTHY_EVENT = "energy/unhealthy"


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


def news(before, status, reason):
    """Whether ``status``/``reason`` is news against the record ``before`` (None: none): another
    status, or another reason once its figures (seconds, megabytes) are left aside."""
    import re  # pylint: disable=import-outside-toplevel

    def gist(text):
        return re.sub(r"\d+(\.\d+)?", "#", (text or "")[:300])

    return not before or before.get("status") != status or gist(before.get("reason")) != gist(reason)


def kept(node_part, heal):
    """What the light check (``energy_heal.heal_check``) reads of a minion's part of the plan: each
    container's name, component, run arguments and probe, and ``energy:heal``."""
    return {"containers": [{k: c[k] for k in ("name", "component", "run", "health")} for c in node_part["containers"]],
            "heal": heal}
