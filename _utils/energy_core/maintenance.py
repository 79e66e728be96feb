"""Maintenance windows: containers the formula leaves alone (a deliberate ``docker stop`` stays
stopped). Stored per minion as JSON ``{what: {"reason", "since", "until"}}`` where ``what`` is
``all``, a component or a container name."""

import json
import os
import time

from . import healing, names


def _window_ok(entry):
    return (isinstance(entry, dict) and isinstance(entry.get("since"), (int, float))
            and (entry.get("until") is None or isinstance(entry.get("until"), (int, float)))
            and isinstance(entry.get("reason", ""), str))


def read(path, now):
    """The windows in ``path`` that have not ended at ``now``.

    A file that cannot be read never counts as "no maintenance": that would undo an operator's
    hold. An unreadable file gives one window on ``all`` marked ``unreadable`` (with the path and
    the error); an unreadable entry of a readable file gives that target such a window, and the
    readable windows are kept. ``held_reason`` says so for every container a marked window covers,
    and ``change`` refuses to write over them."""
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        return {"all": {"unreadable": f"the maintenance file {path} cannot be read ({exc})"}}
    if not isinstance(entries, dict):
        return {"all": {"unreadable": f"the maintenance file {path} holds a {type(entries).__name__}, not windows"}}
    kept = {}
    for what, entry in entries.items():
        if not _window_ok(entry):
            kept[str(what)] = {"unreadable": f"the maintenance file {path} has an unreadable window for {what}: {entry!r:.80}"}
        elif (entry.get("until") or now + 1) > now:
            kept[what] = entry
    return kept


def unreadable(entries):
    """The error of every unreadable window of ``entries`` (``read``), by target."""
    return {what: e["unreadable"] for what, e in entries.items() if isinstance(e, dict) and e.get("unreadable")}


def write(path, entries):
    """Write ``entries``; a file there that is not valid JSON is set aside first as
    ``<path>.corrupt`` (what the operator had is kept to look at, not overwritten)."""
    try:
        with open(path, encoding="utf-8") as handle:
            json.load(handle)
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        os.replace(path, path + ".corrupt")
    healing.write_atomic(path, json.dumps(entries, sort_keys=True), mode=0o600)


def valid_target(what):
    return what == "all" or what in names.COMPONENTS or what.startswith("energy-")


def held_reason(entries, name, component, minion):
    """Why container ``name`` of ``component`` is left alone, or ''."""
    for what in (name, component, "all"):
        entry = entries.get(what)
        if entry and entry.get("unreadable"):
            return (f"{entry['unreadable']}: every container it may hold is left alone until it is fixed. Fix: "
                    f"correct the file, or end the window(s) with: salt {minion} energy_heal.maintenance off {what}")
        if entry:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["since"]))
            until = (" until " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["until"]))
                     if entry.get("until") else "")
            reason = f" ({entry['reason']})" if entry.get("reason") else ""
            return (f"maintenance on {what} since {since}{until}{reason}"
                    f"; resume with: salt {minion} energy_heal.maintenance off {what}")
    return ""


def change(entries, action, what, reason, hours, now):
    """Apply ``on``/``off`` of ``what`` to ``entries`` (a copy is returned with the windows ended).
    Raises ValueError with the fix for a bad action, target or number of hours."""
    if isinstance(action, bool):  # the CLI's YAML reads a bare on/off as true/false
        action = "on" if action else "off"
    action, what, entries = str(action).lower(), str(what), dict(entries)
    if action not in ("on", "off"):
        raise ValueError(f"energy_heal.maintenance: bad action {action!r}. Fix: on, off or status.")
    if not valid_target(what):
        raise ValueError(f"energy_heal.maintenance: bad target {what!r}. Fix: all, a component "
                         f"({', '.join(names.COMPONENTS)}) or a container name of the stack (energy-...; see "
                         "salt-call energy_inventory.deployed).")
    bad = unreadable(entries)
    if bad and not (action == "off" and (what == "all" or what in bad)):
        raise ValueError(f"energy_heal.maintenance: {'; '.join(bad.values())}. Fix: correct the file, or end the "
                         f"unreadable window(s) first: energy_heal.maintenance off {'all' if 'all' in bad else sorted(bad)[0]} "
                         "(a file that is not JSON is kept as maintenance.json.corrupt)")
    if action == "on":
        if hours is not None and not (isinstance(hours, (int, float)) and not isinstance(hours, bool) and hours > 0):
            raise ValueError(f"energy_heal.maintenance: bad hours {hours!r}. Fix: a positive number.")
        entries[what] = {"reason": str(reason or ""), "since": now,
                         "until": now + float(hours) * 3600 if hours is not None else None}
        return action, entries, []
    ended = sorted(entries) if what == "all" else [w for w in (what,) if w in entries]
    for key in ended:
        del entries[key]
    return action, entries, ended


def path_in(cachedir):
    return os.path.join(cachedir, "energy", "maintenance.json")
