"""Backups, restores and exports of the measurements, the pure parts: time bounds, the backup
manifest and its check (done in full before anything is written), and the rows of an export
(CSV or InfluxDB line protocol) from InfluxDB's answers, one chunk at a time.

A backup is a directory: ``manifest.json`` and one archive per database, named in the manifest
with its size and SHA-256. ``salt-run energy.restore`` refuses a directory whose manifest or any
archive does not check out, before it writes anywhere."""

import calendar
import hashlib
import json
import os
import re
import time

from .checks import duration_seconds

FORMAT = "energy-backup"
VERSION = 1
MANIFEST = "manifest.json"
MEASUREMENT = "power_consumption"  # what SmartWatts' InfluxDB output writes
CSV_COLUMNS = ("time", "minion", "cpu", "container", "scope", "watts")
FORMATS = ("csv", "line")


class ArchiveError(ValueError):
    """Bad input to a backup, restore or export: the message names the value and the fix."""


_RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d{1,9})?(Z|[+-]\d\d:\d\d)?$")


def parse_time(value, now, key):
    """Nanoseconds since the epoch of ``value``: RFC 3339 (``2026-11-26T10:00:00Z``), seconds since
    the epoch, or a duration before ``now`` (``2h``: two hours ago). None stays None. Raises
    ArchiveError naming ``key``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ArchiveError(f"{key}: bad value {value!r}: a time (2026-11-26T10:00:00Z), seconds since the epoch, "
                           "or a duration before now (2h, 7d)")
    if isinstance(value, (int, float)):
        return int(value * 1e9)
    if hasattr(value, "utctimetuple"):  # the CLI's YAML may turn an RFC 3339 time into a datetime
        offset = value.utcoffset() if hasattr(value, "utcoffset") else None
        seconds = calendar.timegm(value.utctimetuple()) if offset is not None else calendar.timegm(value.timetuple())
        return seconds * 10**9 + getattr(value, "microsecond", 0) * 1000
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return int(float(text) * 1e9)
    match = _RFC3339.match(text)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        seconds = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second)))
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
        nanos = int((fraction or ".0")[1:].ljust(9, "0"))
        return seconds * 10**9 + nanos
    try:
        return int((now - duration_seconds(text)) * 1e9)
    except (TypeError, ValueError):
        pass
    raise ArchiveError(f"{key}: bad value {text!r}: a time (2026-11-26T10:00:00Z), seconds since the epoch, "
                       "or a duration before now (2h, 7d)")


def rfc3339(nanos):
    """``2026-11-26T10:00:00.123456789Z`` for nanoseconds since the epoch."""
    seconds, rest = divmod(int(nanos), 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{rest:09d}Z" if rest else f"{stamp}Z"


def time_filter(since, until):
    """The InfluxQL ``WHERE`` clause of a range in nanoseconds (either end may be None)."""
    parts = []
    if since is not None:
        parts.append(f"time >= {int(since)}")
    if until is not None:
        parts.append(f"time < {int(until)}")
    return (" WHERE " + " AND ".join(parts)) if parts else ""


def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- the manifest

ENTRY_KEYS = {"kind": str, "cpu": str, "database": str, "host": str, "file": str, "size": int, "sha256": str}


def manifest(entries, since, until, strategy, seconds, created):
    return {"format": FORMAT, "version": VERSION, "created": rfc3339(int(created * 1e9)),
            "since": rfc3339(since) if since is not None else None,
            "until": rfc3339(until) if until is not None else None,
            "strategy": strategy, "seconds": round(seconds, 2), "entries": entries}


def _safe_file(name):
    return (isinstance(name, str) and name and not os.path.isabs(name) and ".." not in name.split("/")
            and re.fullmatch(r"[A-Za-z0-9_./-]+", name) is not None)


def check(directory):
    """The manifest of the backup in ``directory`` once every archive it names is there with its
    size and SHA-256; raises ArchiveError listing every problem (a foreign or corrupt backup)."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isdir(directory):
        raise ArchiveError(f"src: bad value {directory!r}: not a directory. Fix: the directory salt-run energy.backup "
                           "wrote (it holds manifest.json)")
    try:
        with open(path, encoding="utf-8") as handle:
            found = json.load(handle)
    except OSError as exc:
        raise ArchiveError(f"src: bad value {directory!r}: no readable {MANIFEST} ({exc.strerror}). Fix: the "
                           "directory salt-run energy.backup wrote") from exc
    except ValueError as exc:
        raise ArchiveError(f"src: bad value {directory!r}: {MANIFEST} is not JSON ({exc}). The backup is "
                           "damaged: restore another one") from exc
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        raise ArchiveError(f"src: bad value {directory!r}: {MANIFEST} is not an energy backup (format "
                           f"{found.get('format') if isinstance(found, dict) else type(found).__name__!r}, "
                           f"expected {FORMAT!r}). Fix: the directory salt-run energy.backup wrote")
    if found.get("version") != VERSION:
        raise ArchiveError(f"src: bad value {directory!r}: backup format version {found.get('version')!r}, this "
                           f"formula reads version {VERSION}. Fix: restore it with the formula release that made it")
    problems = []
    entries = found.get("entries")
    if not isinstance(entries, list) or not entries:
        problems.append("the manifest lists no archive")
        entries = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"entry {i} is not a mapping")
            continue
        bad = [k for k, kind in ENTRY_KEYS.items() if not isinstance(entry.get(k), kind)]
        if bad:
            problems.append(f"entry {i} lacks {', '.join(bad)}")
            continue
        if not _safe_file(entry["file"]):
            problems.append(f"entry {i}: file {entry['file'][:80]!r} is not a plain relative path")
            continue
        archive = os.path.join(directory, entry["file"])
        if not os.path.isfile(archive):
            problems.append(f"{entry['file']} is missing")
        elif os.path.getsize(archive) != entry["size"]:
            problems.append(f"{entry['file']} has {os.path.getsize(archive)} bytes, the manifest says {entry['size']}")
        elif sha256_of(archive) != entry["sha256"]:
            problems.append(f"{entry['file']}: SHA-256 differs from the manifest's (the archive is damaged)")
    if problems:
        raise ArchiveError(f"src: bad value {directory!r}: the backup does not check out, nothing was restored:\n  - "
                           + "\n  - ".join(problems) + "\nFix: restore an intact copy of the backup")
    return found


def points_of(points):
    """The points per measurement of a manifest entry's ``points`` ({} when it says none)."""
    if not isinstance(points, dict):
        return {}
    return {k: v for k, v in points.items() if isinstance(v, int) and not isinstance(v, bool)}


def shortfall(expected, found):
    """What ``found`` (points per measurement) lacks of ``expected``: ``{measurement: (found,
    expected)}``, empty when every measurement has at least its expected points. A database that
    ``influxd restore`` just made answers with fewer points, or none, for a few seconds while
    InfluxDB opens its shards: a restore waits until this is empty."""
    return {name: (found.get(name, 0), want) for name, want in sorted(expected.items()) if found.get(name, 0) < want}


# --------------------------------------------------------------------------- export rows


def series_of(chunk):
    """The series of one chunk of InfluxDB's chunked answer (a JSON object); raises RuntimeError on
    an error answer."""
    for result in chunk.get("results", []):
        if "error" in result:
            raise RuntimeError(result["error"])
        yield from result.get("series") or []


def _tags_key(series):
    tags = series.get("tags") or {}
    return tuple(sorted(tags.items()))


class CsvRows:
    """Rows ``(time, minion, cpu, container, scope, watts)`` from the answer of
    ``SELECT "power" FROM "power_consumption" ... GROUP BY "sensor","target","scope"`` (epoch=ns),
    fed one series (or part of one) at a time; the sockets of one time are summed. Call ``flush``
    at the end."""

    def __init__(self, cpu):
        self.cpu = cpu
        self.pending = None  # (series key, time, watts)

    def _row(self, key, stamp, watts):
        tags = dict(key)
        return (rfc3339(stamp), tags.get("sensor", ""), self.cpu, tags.get("target", ""), tags.get("scope", ""),
                repr(float(watts)))

    def feed(self, series):
        key = _tags_key(series)
        columns = series.get("columns") or []
        at, power = columns.index("time"), columns.index("power")
        for values in series.get("values") or []:
            stamp, watts = values[at], values[power]
            if watts is None:
                continue
            if self.pending and self.pending[0] == key and self.pending[1] == stamp:
                self.pending = (key, stamp, self.pending[2] + watts)
                continue
            if self.pending:
                yield self._row(*self.pending)
            self.pending = (key, stamp, watts)

    def flush(self):
        if self.pending:
            yield self._row(*self.pending)
        self.pending = None


def _escape(text, chars):
    text = str(text).replace("\\", "\\\\")
    for char in chars:
        text = text.replace(char, "\\" + char)
    return text


def line_protocol(series, field_types):
    """InfluxDB line protocol of one series of ``SELECT * ... GROUP BY *`` (epoch=ns);
    ``field_types``: ``{field: float|integer|string|boolean}`` (``SHOW FIELD KEYS``)."""
    measurement = _escape(series["name"], ", ")
    tags = "".join(f",{_escape(k, ',= ')}={_escape(v, ',= ')}" for k, v in sorted((series.get("tags") or {}).items())
                   if v != "")
    columns = series.get("columns") or []
    for values in series.get("values") or []:
        fields = []
        for column, value in zip(columns, values):
            if column == "time" or value is None:
                continue
            kind = field_types.get(column, "float")
            if kind == "integer":
                text = f"{int(value)}i"
            elif kind == "string":
                text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
            elif kind == "boolean":
                text = "true" if value else "false"
            else:
                text = repr(float(value))
            fields.append(f"{_escape(column, ',= ')}={text}")
        if fields:
            yield f"{measurement}{tags} {','.join(fields)} {int(values[columns.index('time')])}"


# --------------------------------------------------------------------------- what to back up, in a plan's topology


def cpu_list(cpus, known):
    """The CPU names asked for (all of ``known`` when None); an unknown one is an error."""
    if cpus in (None, "", []):
        return sorted(known)
    wanted = [c.strip() for c in cpus.split(",")] if isinstance(cpus, str) else [str(c) for c in cpus]
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise ArchiveError(
            f"cpus: bad value {unknown[0]!r}: not a CPU name of the plan. Fix: one of {sorted(known)} "
            "(salt-run energy.summary lists them), or leave cpus out for all")
    return wanted


def influx_targets(facts, cpu):
    """``[(minion, container, database)]`` of the InfluxDBs that hold ``cpu``'s power in the plan."""
    boxes = facts["boxes"]
    found = []
    for frm, to, database in facts["edges"]:
        if boxes.get(frm, {}).get("component") == "formula" and boxes[frm]["cpu"] == cpu and to in boxes:
            target = (boxes[to]["minion"], to, database)
            if target not in found:
                found.append(target)
    return sorted(found)


def restore_target(facts, entry):
    """Where a backed-up database goes in the current plan: the same host and database when the plan
    still has it, else the one InfluxDB of the CPU name."""
    targets = [t for t in influx_targets(facts, entry["cpu"]) if t[2] == entry["database"]]
    same = [t for t in targets if t[0] == entry["host"]]
    if same or len(targets) == 1:
        return (same or targets)[0]
    if not targets:
        raise ArchiveError(
            f"the backup's CPU name {entry['cpu']!r} (database {entry['database']}) has no InfluxDB in the current plan. "
            "Fix: deploy it first (salt-run state.orchestrate energy.orch with its sensors), or leave it out (cpus=)")
    raise ArchiveError(
        f"the backup of {entry['database']} from {entry['host']} could go to {len(targets)} InfluxDBs of the current "
        f"plan ({', '.join(t[0] for t in targets)}; the dedicated strategy): it holds several machines and a restore "
        "does not split it. Fix: restore under the strategy it was taken with, then switch strategies")


def planned(facts, what):
    """Raise when the master has no plan to ``what`` (backup, restore, export): the error the
    summary's facts carry, named."""
    if "plan" in facts["differences"]["errors"]:
        raise ArchiveError(f"no plan to {what}: {facts['differences']['errors']['plan']}")


def targets_of(facts, cpus):
    """``[(cpu, (minion, container, database))]``: the InfluxDBs of the CPU names asked for."""
    return [(cpu, t) for cpu in cpu_list(cpus, facts["cpus"]) for t in influx_targets(facts, cpu)]


def backup_range(since, until, now):
    """(since, until) in nanoseconds for a backup: ``until`` defaults to ``now``, ``since`` (None:
    from the start) must be before it."""
    since_ns = parse_time(since, now, "since")
    until_ns = parse_time(until, now, "until") if until not in (None, "") else int(now * 1e9)
    if since_ns is not None and since_ns >= until_ns:
        raise ArchiveError(f"since: bad value {since!r}: it is not before until. Fix: an earlier since, or a later until")
    return since_ns, until_ns


def backup_targets(facts, cpus):
    """``targets_of``, refused when a minion that holds one of them did not answer."""
    planned(facts, "back up")
    targets = targets_of(facts, cpus)
    down = sorted({m for _c, (m, _n, _d) in targets} & set(facts["differences"]["no_answer"]))
    if down:
        raise ArchiveError(f"minion {down[0]} holds an InfluxDB to back up and did not answer. Fix: bring it back "
                           "(salt-run manage.status), or leave its CPU names out (cpus=)")
    return targets


def formulas_to_stop(facts, cpus, stop_formulas):
    """The running SmartWatts of ``cpus`` that a restore stops (``stop_formulas``); without it, one
    running is refused, with how to stop it."""
    boxes = facts["boxes"]
    running = sorted(n for n, b in boxes.items() if b["component"] == "formula" and b["cpu"] in cpus
                     and b["state"] == "running")
    if running and not stop_formulas:
        minion = boxes[running[0]]["minion"]
        raise ArchiveError(
            f"SmartWatts {running[0]} is running and writes into a database to restore. Fix: stop_formulas=True "
            "(the restore stops them in a maintenance window and starts them again), or stop them yourself: "
            f"salt {minion} energy_heal.maintenance on {running[0]}, then salt {minion} docker.stop {running[0]}")
    return running
