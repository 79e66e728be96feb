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


def path_in(cachedir):
    return os.path.join(cachedir, "energy", "maintenance.json")
