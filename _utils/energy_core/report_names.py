"""Names a person recognises for SmartWatts' targets: a container's name, and its compose project
and service.

A real hwpc-sensor reports a container under its cgroup path (``/docker/<64 hex>`` on cgroup v1,
``system.slice/docker-<id>.scope`` on cgroup v2 with systemd, ``docker/<id>`` with cgroupfs), or
under the name it resolved itself (cgroup v1 releases read the container's config). The minion
that ran the container answers for it: from Docker for the containers it still has, and from a
record its ``energy_names`` engine keeps of every container start (name and labels), for those
removed since. The record is bounded: entries older than the experiment's duration go, and at
most ``MAX_RECORDS`` are kept. The master checks every answer (``checked``): a target the minion
cannot name, or names badly, keeps its cgroup path and says so."""

import json
import re

from . import names

RECORD_FILE = "energy/containers.jsonl"  # in the minion's cachedir
MAX_RECORDS = 20_000
LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
MAX_LABEL = 200
_ID = r"([0-9a-f]{64})"
_PATTERNS = (re.compile(rf"/?docker/{_ID}"), re.compile(rf"/?(?:[\w.@-]+/)*docker-{_ID}\.scope"),
             re.compile(rf"/?(?:[\w.@-]+/)*{_ID}"))


def container_id(target):
    """The container ID in a cgroup path target, or None (a name, or something else)."""
    for pattern in _PATTERNS:
        match = pattern.fullmatch(str(target))
        if match:
            return match.group(1)
    return None


def record(container_id_, name, labels, when):
    """One line of the record: a container that started."""
    labels = labels or {}
    return json.dumps({"id": container_id_, "name": str(name).lstrip("/"), "project": labels.get(LABEL_PROJECT),
                       "service": labels.get(LABEL_SERVICE), "time": round(float(when), 3)}, sort_keys=True)


def read_records(lines):
    """``{id: entry}`` and ``{name: entry}`` (the latest start of each) from the record's lines;
    a line that is not a record is skipped."""
    by_id, by_name = {}, {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and isinstance(entry.get("name"), str):
            by_id[entry["id"]] = entry
            by_name[entry["name"]] = entry
    return by_id, by_name


def kept(lines, now, keep_seconds, limit=MAX_RECORDS):
    """The lines the record keeps: started within ``keep_seconds`` of ``now``, the newest
    ``limit`` of them (the engine rewrites the file with these when it has grown past twice that)."""
    found = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("time"), (int, float)) and now - entry["time"] <= keep_seconds:
            found.append(line.rstrip("\n"))
    return found[-limit:]


def resolve(targets, docker_containers, records):
    """``{target: {"name", "project", "service", "id"} or None}``: from ``docker_containers``
    (``[{"id", "name", "labels"}]``, what Docker has now, exited ones too) first, then from the
    record (``read_records``)."""
    live_id = {c["id"]: c for c in docker_containers}
    live_name = {c["name"]: c for c in docker_containers}
    by_id, by_name = records
    found = {}
    for target in targets:
        ident = container_id(target)
        live = live_id.get(ident) if ident else live_name.get(str(target).lstrip("/"))
        if live:
            labels = live.get("labels") or {}
            found[target] = {"name": live["name"], "project": labels.get(LABEL_PROJECT),
                             "service": labels.get(LABEL_SERVICE), "id": live["id"]}
            continue
        entry = by_id.get(ident) if ident else by_name.get(str(target).lstrip("/"))
        found[target] = ({k: entry.get(k) for k in ("name", "project", "service", "id")} if entry else None)
    return found


def _label(value):
    return value if isinstance(value, str) and 0 < len(value) <= MAX_LABEL and value.isprintable() else None


def checked(minion, asked, value):
    """A minion's ``energy_report.names`` answer as the master uses it: only the targets asked,
    a name Docker could give (its grammar), labels printable and short; anything else is left
    unresolved. Returns ``({target: {"name", "project", "service"}}, problems)``."""
    if not isinstance(value, dict):
        return {}, [f"minion {str(minion)[:80]!r}: energy_report.names returned no mapping: unresolved"]
    found, problems = {}, []
    for target in asked:
        entry = value.get(target)
        if entry is None:
            continue
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or len(name) > names.MAX_NAME or not names.is_docker_name(name):
            problems.append(f"minion {str(minion)[:80]!r}: energy_report.names gave {repr(entry)[:80]} for "
                            f"{target[:80]!r}: not a container name, left unresolved")
            continue
        found[target] = {"name": name, "project": _label(entry.get("project")), "service": _label(entry.get("service"))}
    return found, problems
