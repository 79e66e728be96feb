"""The master's reactions to ``energy/docker/*``, bounded: the event is checked against the plan
the master computes itself, and at most one ``energy_heal.react`` per container goes out per interval.

A minion can send events stamped with another minion's id (Salt's batch form of
``_minion_event``), as often as it likes: nothing in the event proves who sent it. What bounds the
work a forged event can cause is here: the container must be one the plan places on the named
minion (so the set of keys is the plan's, not the sender's), and each container gets one reaction
per ``energy:heal:events:interval`` seconds; the others are dropped, counted per container, and
logged once per interval, not once per event.

The reactor runs each runner call on its own (threads of the master's reactor), so the state is a
small JSON file in the master's cachedir, read and written under an exclusive ``flock``."""

import contextlib
import json
import os

STATE_FILE = "reactions.json"
MAX_KEYS = 512  # containers (and refused senders) remembered; the least recent go first
DEFAULT_INTERVAL = 10  # seconds, until a plan says energy:heal:events:interval


def _entry(state, key, section="keys"):
    keys = state.setdefault(section, {})
    if not isinstance(keys, dict):
        keys = state[section] = {}
    if not isinstance(keys.get(key), dict):
        keys[key] = {"last": None, "dropped": 0, "noted": None}
        if len(keys) > MAX_KEYS:
            oldest = sorted((k for k in keys if k != key),
                            key=lambda k: keys[k].get("last") or keys[k].get("noted") or 0)
            for gone in oldest[:len(keys) - MAX_KEYS]:
                del keys[gone]
    return keys[key]


def _since(then, now):
    """Seconds from ``then`` to ``now``; a clock that went back counts as long ago."""
    if not isinstance(then, (int, float)) or now < then:
        return float("inf")
    return now - then


def admit(state, key, now, interval):
    """Whether a reaction for ``key`` may go out at ``now``: ``(True, note)`` at most once per
    ``interval`` seconds, ``(False, note)`` otherwise (the drop is counted). ``note`` is a line to
    log, or None: a drop is noted once per interval, and the first reaction after drops says how
    many there were."""
    entry = _entry(state, key)
    if _since(entry["last"], now) >= interval:
        dropped = entry.get("dropped") or 0
        entry.update(last=now, dropped=0)
        note = f"{key}: {dropped} event(s) dropped since the last reaction" if dropped else None
        return True, note
    return False, drop(state, key, now, interval, f"rate limit: one reaction per {interval:g} s")


def drop(state, key, now, interval, why, section="keys"):
    """Count a dropped event for ``key``; the line to log, at most once per ``interval``, else None.
    Events the plan refuses are counted in ``section`` "refused": a flood of made-up names then
    cannot push the real containers' entries (and their rate limits) out of "keys"."""
    entry = _entry(state, key, section)
    entry["dropped"] = (entry.get("dropped") or 0) + 1
    state["dropped"] = (state.get("dropped") or 0) + 1
    if _since(entry.get("noted"), now) < interval:
        return None
    entry["noted"] = now
    return f"{key}: event(s) dropped ({why}), {entry['dropped']} so far"


def dropped(state, key, section="keys"):
    """How many events for ``key`` were dropped since its last reaction."""
    entry = (state.get(section) or {}).get(key)
    return entry.get("dropped", 0) if isinstance(entry, dict) else 0


def planned(state, now):
    """The plan kept in ``state`` (``{"containers": {minion: [names]}, "interval", "error"}``) while
    younger than its interval, else None (compute it again): a flood costs one plan per interval
    at most."""
    kept = state.get("plan")
    if isinstance(kept, dict) and isinstance(kept.get("containers"), dict) and _since(
            kept.get("at"), now) < (kept.get("interval") or DEFAULT_INTERVAL):
        return kept
    return None


def keep_plan(state, now, containers, interval, error=None):
    """Keep the plan's containers (``{}`` and ``error`` when the master has no plan: that too is
    kept for an interval, so a flood does not recompute it per event)."""
    state["plan"] = {"at": now, "containers": containers, "interval": interval, "error": error}
    return state["plan"]


def refused(kept, minion, name):
    """Why the kept plan does not let ``minion`` react for container ``name``, or ''."""
    kept = kept or {}
    containers = kept.get("containers") or {}
    if kept.get("error"):
        return f"the master has no plan to check it against ({str(kept['error'])[:300]})"
    if minion not in containers:
        return f"{minion} runs no container of the plan computed on the master"
    if name not in containers[minion]:
        return f"{name[:80]!r} is not a container the plan computed on the master places on {minion}"
    return ""


@contextlib.contextmanager
def locked(path):
    """The state in ``path`` for the block, under an exclusive lock; written back when the block
    ends (atomically: a crash leaves the old state or the new). A missing or damaged file is an
    empty state."""
    import fcntl  # pylint: disable=import-outside-toplevel

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path + ".lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, encoding="utf-8") as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            state = {}
        if not isinstance(state, dict):
            state = {}
        yield state
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        os.replace(temporary, path)
