"""Maintenance windows: containers the formula leaves alone (a deliberate ``docker stop`` stays
stopped). Stored per minion as JSON ``{what: {"reason", "since", "until"}}`` where ``what`` is
``all``, a component or a container name."""

import json
import os
import time

from . import healing, names


def read(path, now):
    """The windows in ``path`` that have not ended at ``now``."""
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return {what: e for what, e in entries.items()
            if isinstance(e, dict) and (e.get("until") or now + 1) > now}


def write(path, entries):
    healing.write_atomic(path, json.dumps(entries, sort_keys=True), mode=0o600)


def valid_target(what):
    return what == "all" or what in names.COMPONENTS or what.startswith("energy-")


def held_reason(entries, name, component, minion):
    """Why container ``name`` of ``component`` is left alone, or ''."""
    for what in (name, component, "all"):
        entry = entries.get(what)
        if entry:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["since"]))
            until = (" until " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["until"]))
                     if entry.get("until") else "")
            reason = f" ({entry['reason']})" if entry.get("reason") else ""
            return (f"maintenance on {what} since {since}{until}{reason}"
                    f"; resume with: salt {minion} energy.maintenance off {what}")
    return ""


def change(entries, action, what, reason, hours, now):
    """Apply ``on``/``off`` of ``what`` to ``entries`` (a copy is returned with the windows ended).
    Raises ValueError with the fix for a bad action, target or number of hours."""
    if isinstance(action, bool):  # the CLI's YAML reads a bare on/off as true/false
        action = "on" if action else "off"
    action, what, entries = str(action).lower(), str(what), dict(entries)
    if action not in ("on", "off"):
        raise ValueError(f"energy.maintenance: bad action {action!r}. Fix: on, off or status.")
    if not valid_target(what):
        raise ValueError(f"energy.maintenance: bad target {what!r}. Fix: all, a component "
                         f"({', '.join(names.COMPONENTS)}) or a container name of the stack (energy-...; see "
                         "salt-call energy.deployed).")
    if action == "on":
        if hours is not None and not (isinstance(hours, (int, float)) and not isinstance(hours, bool) and hours > 0):
            raise ValueError(f"energy.maintenance: bad hours {hours!r}. Fix: a positive number.")
        entries[what] = {"reason": str(reason or ""), "since": now,
                         "until": now + float(hours) * 3600 if hours is not None else None}
        return action, entries, []
    ended = sorted(entries) if what == "all" else [w for w in (what,) if w in entries]
    for key in ended:
        del entries[key]
    return action, entries, ended


def path_in(cachedir):
    return os.path.join(cachedir, "energy", "maintenance.json")
