"""An experiment's phases and its configuration: the marks ``salt-run energy.mark`` writes into every
InfluxDB of the plan (measurement ``energy_mark``, which the dashboards show as annotations), the
window ``energy.report experiment=<name>`` reports, and the plan's facts per CPU name that a report
carries so that two reports can be compared (``energy.report compare=<json>``)."""

import json
import re

MEASUREMENT = "energy_mark"
PHASES = ("start", "end")
MAX_NOTE = 500
MAX_MARKS = 10_000  # marks one database may return
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
# the annotation query of each InfluxDB datasource (Grafana's InfluxQL annotations)
ANNOTATION_QUERY = f'SELECT "text" FROM "{MEASUREMENT}" WHERE $timeFilter'


def annotation(datasource):
    """The dashboards' annotation of the marks, read from ``datasource`` (every InfluxDB of the
    plan holds every mark: one datasource shows them all)."""
    return {"name": "Experiment marks (salt-run energy.mark)", "datasource": datasource, "enable": True,
            "hide": False, "iconColor": "rgba(255, 152, 48, 1)", "query": ANNOTATION_QUERY,
            "textColumn": "text", "tagsColumn": "name,phase"}


class MarkError(ValueError):
    """Bad input to a mark or an experiment: the message names the value and the fix."""


def check_mark(name, phase, note):
    """``(name, phase, note)`` checked; raises MarkError naming the bad one and the fix."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise MarkError(f"name: bad value {str(name)[:80]!r}: 1-100 letters, digits, '_', '.', ':' or '-', starting "
                        "with a letter or digit. Fix: salt-run energy.mark run-42 start")
    if phase not in PHASES:
        raise MarkError(f"phase: bad value {str(phase)[:80]!r}: start or end. Fix: salt-run energy.mark {name} start")
    note = "" if note is None else str(note)
    if len(note) > MAX_NOTE or not note.isprintable():
        raise MarkError(f"note: bad value {note[:80]!r}: at most {MAX_NOTE} printable characters, on one line")
    return name, phase, note


def _quoted(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line(name, phase, note, nanos):
    """The mark as one line of InfluxDB line protocol."""
    text = f"{name} {phase}" + (f": {note}" if note else "")
    return f"{MEASUREMENT},name={name},phase={phase} text={_quoted(text)},note={_quoted(note)} {int(nanos)}"


LIST_STATEMENT = f'SELECT "note" FROM "{MEASUREMENT}" GROUP BY "name","phase"'


def marks_of(series_list):
    """``[{"time", "name", "phase", "note"}]`` (time in ns) from the answer of ``LIST_STATEMENT``
    (epoch=ns); malformed entries are skipped."""
    found = []
    for series in series_list:
        tags = series.get("tags") or {}
        name, phase = tags.get("name"), tags.get("phase")
        if not isinstance(name, str) or not _NAME.fullmatch(name) or phase not in PHASES:
            continue
        columns = series.get("columns") or []
        if "time" not in columns:
            continue
        at, note = columns.index("time"), columns.index("note") if "note" in columns else None
        for values in (series.get("values") or [])[:MAX_MARKS]:
            stamp = values[at]
            text = values[note] if note is not None else ""
            if isinstance(stamp, int) and not isinstance(stamp, bool) and stamp >= 0:
                found.append({"time": stamp, "name": name, "phase": phase,
                              "note": text if isinstance(text, str) and len(text) <= MAX_NOTE else ""})
    return found


def checked(value):
    """A minion's ``energy_report.marks`` answer (untrusted) as marks: well-formed entries only."""
    if not isinstance(value, list):
        return []
    return [{"time": m["time"], "name": m["name"], "phase": m["phase"],
             "note": m["note"] if isinstance(m.get("note"), str) and len(m["note"]) <= MAX_NOTE else ""}
            for m in value[:MAX_MARKS]
            if isinstance(m, dict) and isinstance(m.get("time"), int) and not isinstance(m["time"], bool)
            and m["time"] >= 0 and isinstance(m.get("name"), str) and _NAME.fullmatch(m["name"])
            and m.get("phase") in PHASES]


def merged(*lists):
    """The marks of several databases as one list, each mark once, in time order."""
    seen = {(m["time"], m["name"], m["phase"]): m for found in lists for m in found}
    return [seen[k] for k in sorted(seen)]


def experiments(marks):
    """``[{"name", "since", "until", "note"}]``: each start with the first end of its name after it
    (``until`` None: still running)."""
    runs = []
    for mark in marks:
        if mark["phase"] == "start":
            runs.append({"name": mark["name"], "since": mark["time"], "until": None, "note": mark["note"]})
        else:
            for run in reversed(runs):
                if run["name"] == mark["name"] and run["until"] is None and run["since"] <= mark["time"]:
                    run["until"] = mark["time"]
                    break
    return runs


def window(marks, name, now_ns):
    """``(since, until, running)`` of the latest run of experiment ``name``; raises MarkError."""
    runs = [r for r in experiments(marks) if r["name"] == name]
    if not runs:
        known = sorted({m["name"] for m in marks})
        raise MarkError(f"experiment: bad value {name!r}: no start mark of that name in the plan's InfluxDBs. Fix: "
                        f"salt-run energy.mark {name} start (then end), or one of {known[:20]} (salt-run energy.marks)")
    run = runs[-1]
    return run["since"], run["until"] or now_ns, run["until"] is None


# --------------------------------------------------------------------------- configuration as part of the result

_PARAMETERS = ("--cpu-base-freq", "--cpu-base-clock", "--cpu-tdp", "--cpu-error-threshold", "--dram-error-threshold",
               "--sensor-reports-frequency", "--learn-min-samples-required", "--learn-history-window-size",
               "--disable-dram-formula", "--disable-cpu-formula")


def _parameters(command):
    found, args = {}, [str(a) for a in command or []]
    for i, arg in enumerate(args):
        if arg in _PARAMETERS:
            takes_value = i + 1 < len(args) and not args[i + 1].startswith("--")
            found[arg.lstrip("-")] = args[i + 1] if takes_value else True
    return found


def cpu_config(plan, cpu):
    """The facts of the plan that shape ``cpu``'s figures: sensor events and frequency, SmartWatts
    release and parameters, strategy and sensor mode (no secret: names, events and numbers)."""
    info = plan["cpus"][cpu]
    chosen = info.get("sensor") or {}
    containers = [c for h in plan["hosts"].values() for c in h["containers"] if c.get("cpu") == cpu]
    formula = next((c for c in containers if c["component"] == "formula"), None) or {}
    sensor = next((c for c in containers if c["component"] == "sensor"), None) or {}
    parameters = _parameters((formula.get("run") or {}).get("command"))
    return {"strategy": plan.get("strategy"), "mode": chosen.get("mode"),
            "events": {group: list(chosen.get(group) or []) for group in ("core", "rapl", "msr")},
            "dram": bool(chosen.get("dram")), "dropped_roles": list(chosen.get("dropped_roles") or []),
            "frequency_ms": int(parameters["sensor-reports-frequency"]) if str(
                parameters.get("sensor-reports-frequency", "")).isdigit() else None,
            "sensor": f"{sensor.get('image_repo')}:{sensor.get('image_tag')}" if sensor else None,
            "smartwatts": f"{formula.get('image_repo')}:{formula.get('image_tag')}" if formula else None,
            "parameters": parameters, "sensors": list(info.get("sensors") or [])}


def _flat(value, prefix=""):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flat(inner, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def compare(before, after):
    """What differs between two reports (JSON documents): per CPU name, each configuration fact
    that changed, and a CPU name present in one only. Returns lines."""
    def configs(doc):
        return {c["cpu"]: c.get("config") or {} for c in doc.get("cpus") or [] if isinstance(c, dict) and "cpu" in c}

    old, new = configs(before), configs(after)
    lines = []
    for cpu in sorted(set(old) | set(new)):
        if cpu not in new:
            lines.append(f"{cpu}: only in the earlier report")
            continue
        if cpu not in old:
            lines.append(f"{cpu}: only in this report")
            continue
        a, b = dict(_flat(old[cpu])), dict(_flat(new[cpu]))
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                lines.append(f"{cpu}: {key}: {json.dumps(a.get(key))} -> {json.dumps(b.get(key))}")
    return lines or ["the configurations of every CPU name are identical"]
