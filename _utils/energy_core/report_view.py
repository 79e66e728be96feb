"""The experiment's report on the master: the InfluxDB minions' sums checked (untrusted input),
put together per machine, container and CPU name, and written out as a table, JSON or tidy CSV.

The JSON keys scripts may rely on (issue 24): ``since``, ``until`` (epoch seconds), ``machines``
``[{minion, cpu, rapl_j, model_j, monitor_j, containers: [{name, target, joules, scope_j: {cpu,
dram}, mean_w, peak_w, seconds, coverage}]}]``, ``cpus`` ``[{cpu, joules, error_median_pct,
error_p95_pct, mode, config}]``. Each machine also has ``monitor`` (the stack's own containers,
with the same keys), ``seconds``, ``coverage`` and ``gaps``; each container ``project``,
``service`` and ``resolved``."""

import csv
import fnmatch
import io
import math

from . import report
from .trust import Untrusted

MAX_TARGETS = 5000  # containers one machine may report in a window
MAX_TEXT = 300
CSV_COLUMNS = ("minion", "cpu", "container", "target", "project", "service", "monitor", "joules_j", "cpu_j",
               "dram_j", "mean_w", "peak_w", "seconds_s", "coverage_pct", "since_s", "until_s")


def _refuse(minion, key, value, why):
    return Untrusted(f"minion {str(minion)[:80]!r}: energy_report.read returned {key} = {repr(value)[:80]}: {why}")


def _number(minion, key, value, upper=1e15):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= upper:
        raise _refuse(minion, key, value, "not a finite non-negative number")
    return float(value)


def _stamp(minion, key, value, since, until):
    if isinstance(value, bool) or not isinstance(value, int) or not since <= value <= until:
        raise _refuse(minion, key, value, "not a time in the window (ns)")
    return value


def _scopes(minion, key, value):
    if not isinstance(value, dict) or len(value) > 4 or not all(k in ("cpu", "dram") for k in value):
        raise _refuse(minion, key, value, "not a mapping of scope (cpu, dram) to joules")
    return {k: _number(minion, f"{key}[{k}]", v) for k, v in value.items()}


def _machine(minion, sensor, value, since, until):
    key = f"machines[{sensor}]"
    if not isinstance(value, dict) or not isinstance(value.get("gaps"), list) or not isinstance(value.get("errors"), list):
        raise _refuse(minion, key, value, "not a machine's sums")
    if len(value["gaps"]) > report.MAX_GAPS + 1 or len(value["errors"]) > report.ERROR_BINS + 1:
        raise _refuse(minion, key, len(value["gaps"]), "too many gaps or error bins")
    gaps = []
    for gap in value["gaps"]:
        if not isinstance(gap, list) or len(gap) != 2:
            raise _refuse(minion, f"{key}.gaps", gap, "not [start, end]")
        gaps.append([_stamp(minion, f"{key}.gaps", g, since, until) for g in gap])
    errors = {}
    for pair in value["errors"]:
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, int) and not isinstance(p, bool)
                                                                   for p in pair) \
                or not 0 <= pair[0] <= report.ERROR_BINS or not 0 < pair[1] <= 10**9:
            raise _refuse(minion, f"{key}.errors", pair, "not [bin, count]")
        errors[pair[0]] = pair[1]
    dram = value.get("rapl_dram_j")
    return {"ticks": int(_number(minion, f"{key}.ticks", value.get("ticks"), 1e9)),
            "global_ticks": int(_number(minion, f"{key}.global_ticks", value.get("global_ticks"), 1e9)),
            "rapl_j": _number(minion, f"{key}.rapl_j", value.get("rapl_j")),
            "rapl_dram_j": None if dram is None else _number(minion, f"{key}.rapl_dram_j", dram),
            "global_j": _number(minion, f"{key}.global_j", value.get("global_j")),
            "gaps": gaps, "more_gaps": int(_number(minion, f"{key}.more_gaps", value.get("more_gaps"), 1e9)),
            "errors": errors}


def _target(minion, key, value, since, until, buckets):
    if not isinstance(value, dict):
        raise _refuse(minion, key, value, "not a target's sums")
    found = {"scope_j": _scopes(minion, f"{key}.scope_j", value.get("scope_j")),
             "ticks": int(_number(minion, f"{key}.ticks", value.get("ticks"), 1e9)),
             "peak_w": _number(minion, f"{key}.peak_w", value.get("peak_w"), 1e7),
             "first": _stamp(minion, f"{key}.first", value.get("first"), since, until),
             "last": _stamp(minion, f"{key}.last", value.get("last"), since, until), "buckets": None}
    if buckets:
        series = value.get("buckets")
        if not isinstance(series, list) or len(series) != buckets:
            raise _refuse(minion, f"{key}.buckets", series, f"not {buckets} numbers")
        found["buckets"] = [_number(minion, f"{key}.buckets", b) for b in series]
    return found


def checked(minion, value, sensors, since, until, period_s, buckets):
    """A minion's ``energy_report.read`` answer, every value checked, reduced to ``sensors`` (the
    plan's sensors of that database: a point under another sensor's name is not the plan's, and
    left out). Raises Untrusted naming the minion."""
    if not isinstance(value, dict) or value.get("since") != since or value.get("until") != until \
            or value.get("period_s") != period_s or value.get("buckets") != buckets:
        raise _refuse(minion, "its return", value, "not the sums of the window asked for")
    machines, targets = value.get("machines"), value.get("targets")
    if not isinstance(machines, dict) or not isinstance(targets, dict):
        raise _refuse(minion, "machines", machines, "not a mapping of sensors")
    result = {"machines": {}, "targets": {}}
    for sensor in sorted(set(sensors) & set(machines)):
        result["machines"][sensor] = _machine(minion, sensor, machines[sensor], since, until)
        found = targets.get(sensor) or {}
        if not isinstance(found, dict) or len(found) > MAX_TARGETS:
            raise _refuse(minion, f"targets[{sensor}]", found, f"not a mapping of at most {MAX_TARGETS} targets")
        for target, sums in found.items():
            if not isinstance(target, str) or not 0 < len(target) <= MAX_TEXT or not target.isprintable():
                raise _refuse(minion, f"targets[{sensor}]", target, "not a target name")
            result["targets"].setdefault(sensor, {})[target] = _target(
                minion, f"targets[{sensor}][{target}]", sums, since, until, buckets)
    return result


# --------------------------------------------------------------------------- putting it together


def _seconds(ns):
    return ns / 1e9


def _container(target, sums, name, window_s, period_s):
    seconds = sums["ticks"] * period_s
    joules = sum(sums["scope_j"].values())
    return {"name": name.get("name") or target, "target": target, "resolved": bool(name.get("name")),
            "project": name.get("project"), "service": name.get("service"),
            "joules": joules, "scope_j": {"cpu": sums["scope_j"].get("cpu"), "dram": sums["scope_j"].get("dram")},
            "mean_w": joules / seconds if seconds else 0.0, "peak_w": sums["peak_w"], "seconds": seconds,
            "coverage": min(1.0, seconds / window_s) if window_s else 0.0,
            "first": _seconds(sums["first"]), "last": _seconds(sums["last"]) + period_s,
            "buckets": sums["buckets"]}


def wanted(container, patterns):
    """Whether ``containers=`` keeps a container: a pattern (shell-style) matching its name, its
    target, or its ``project/service``."""
    if not patterns:
        return True
    keys = [container["name"], container["target"]]
    if container.get("project") or container.get("service"):
        keys.append(f"{container.get('project') or ''}/{container.get('service') or ''}")
    return any(fnmatch.fnmatchcase(str(k), p) for k in keys for p in patterns)


def machine(minion, cpu, sums, targets, names, monitor, window, period_s, patterns=None):
    """One machine's part of the report: its containers (named where the minion could say),
    the stack's own containers apart (``monitor``: names of the plan's containers there)."""
    since, until = window
    window_s = _seconds(until - since)
    rows = [_container(t, s, names.get(t) or {}, window_s, period_s) for t, s in sorted(targets.items())]
    own = [r for r in rows if r["name"] in monitor]
    theirs = [r for r in rows if r["name"] not in monitor and wanted(r, patterns)]
    seconds = sums["ticks"] * period_s
    # model_j and rapl_j are the package (cpu scope): the one compares with the other; DRAM apart
    dram = [r["scope_j"]["dram"] for r in rows if r["scope_j"]["dram"] is not None]
    return {"minion": minion, "cpu": cpu, "rapl_j": sums["rapl_j"], "rapl_dram_j": sums["rapl_dram_j"],
            "model_j": sum(r["scope_j"]["cpu"] or 0.0 for r in rows), "model_dram_j": sum(dram) if dram else None,
            "global_j": sums["global_j"],
            "monitor_j": sum(r["joules"] for r in own), "seconds": seconds,
            "coverage": min(1.0, seconds / window_s) if window_s else 0.0,
            # the ticks the model estimated: a tick it could not (a frequency layer not fitted yet)
            # has RAPL's point and no container's
            "model_seconds": sums["global_ticks"] * period_s,
            "gaps": [{"start": _seconds(a), "end": _seconds(b), "seconds": _seconds(b - a)} for a, b in sums["gaps"]],
            "more_gaps": sums["more_gaps"], "containers": theirs, "monitor": own,
            "_errors": sums["errors"]}


def cpu_entry(cpu, machines, mode, config):
    """A CPU name's totals and the model's error over its machines' ticks."""
    errors = {}
    for found in machines:
        for index, count in found.pop("_errors", {}).items():
            errors[index] = errors.get(index, 0) + count
    joules = sum(r["joules"] for m in machines for r in m["containers"] + m["monitor"])
    return {"cpu": cpu, "joules": joules, "rapl_j": sum(m["rapl_j"] for m in machines),
            "error_median_pct": report.percentile(errors, 0.5), "error_p95_pct": report.percentile(errors, 0.95),
            "error_ticks": sum(errors.values()), "mode": mode, "config": config,
            "machines": sorted(m["minion"] for m in machines)}


def document(since, until, machines, cpus, experiment=None, notes=()):
    """The report as data (what ``out=json`` prints)."""
    return {"since": _seconds(since), "until": _seconds(until), "seconds": _seconds(until - since),
            "experiment": experiment, "machines": machines, "cpus": cpus, "notes": list(notes)}


# --------------------------------------------------------------------------- formats


def _rows(doc):
    for found in doc["machines"]:
        for monitor, group in ((False, found["containers"]), (True, found["monitor"])):
            for row in group:
                yield found, monitor, row


def _num(value):
    """A CSV number that reads back as a float ('' when not measured)."""
    return "" if value is None else repr(round(float(value), 6))


def tidy_csv(doc):
    """One row per machine x container, units in the column names; pandas reads it as is."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for found, monitor, row in _rows(doc):
        scopes = row["scope_j"]
        writer.writerow([found["minion"], found["cpu"], row["name"], row["target"], row["project"] or "",
                         row["service"] or "", str(monitor).lower(), _num(row["joules"]), _num(scopes["cpu"]),
                         _num(scopes["dram"]), _num(row["mean_w"]), _num(row["peak_w"]), _num(row["seconds"]),
                         _num(row["coverage"] * 100), _num(doc["since"]), _num(doc["until"])])
    return out.getvalue()


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def text(doc, rfc3339):
    """The readable table."""
    lines = [f"Energy from {rfc3339(int(doc['since'] * 1e9))} to {rfc3339(int(doc['until'] * 1e9))} "
             f"({doc['seconds']:g} s)" + (f", experiment {doc['experiment']}" if doc.get("experiment") else "")]
    for found in doc["machines"]:
        lines.append("")
        lines.append(f"{found['minion']} ({found['cpu']}): RAPL {found['rapl_j']:.1f} J, model {found['model_j']:.1f} J, "
                     f"monitor {found['monitor_j']:.1f} J, coverage {found['coverage']:.1%}")
        for gap in found["gaps"]:
            lines.append(f"  gap {rfc3339(int(gap['start'] * 1e9))} .. {rfc3339(int(gap['end'] * 1e9))} "
                         f"({gap['seconds']:.1f} s, not interpolated)")
        if found["more_gaps"]:
            lines.append(f"  ... and {found['more_gaps']} more gaps")
        lines.append(f"  {'container':32} {'joules':>10} {'mean W':>8} {'peak W':>8} {'seconds':>8} {'cover':>6}")
        for monitor, group in ((False, found["containers"]), (True, found["monitor"])):
            for row in group:
                label = row["name"] + ("" if row["resolved"] else " (unresolved)") + (" [monitor]" if monitor else "")
                if row.get("service"):
                    label += f" {row.get('project') or ''}/{row['service']}"
                lines.append(f"  {label:32} {row['joules']:10.1f} {row['mean_w']:8.2f} {row['peak_w']:8.2f} "
                             f"{row['seconds']:8.0f} {row['coverage']:6.1%}")
    lines.append("")
    lines.append(f"{'CPU name':40} {'joules':>10} {'RAPL J':>10} {'err med %':>9} {'err p95 %':>9} mode")
    for entry in doc["cpus"]:
        lines.append(f"{entry['cpu'][:40]:40} {entry['joules']:10.1f} {entry['rapl_j']:10.1f} "
                     f"{_fmt(entry['error_median_pct'], '9.2f')} {_fmt(entry['error_p95_pct'], '9.2f')} {entry['mode']}")
    lines += [f"note: {note}" for note in doc.get("notes") or []]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- what to read, from the plan


def _names(value, key):
    if value in (None, "", []):
        return []
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else [str(v) for v in value]


def databases(plan, cpus=None, minions=None):
    """``[{"cpu", "minion", "database", "sensors"}]``: each InfluxDB database of the plan that holds
    the power of the CPU names asked for (all by default), with its sensors (those of ``minions``
    when given). Raises ReportError naming an unknown CPU name or minion."""
    known = sorted(plan.get("cpus") or {})
    chosen = _names(cpus, "cpus") or known
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise report.ReportError(f"cpus: bad value {unknown[0]!r}: not a CPU name of the plan. Fix: one of {known} "
                                 "(salt-run energy.summary lists them), or leave cpus out for all")
    sensors = sorted({m for g in plan.get("groups") or [] for m in g["sensors"]})
    asked = _names(minions, "minions")
    unknown = [m for m in asked if m not in sensors]
    if unknown:
        raise report.ReportError(f"minions: bad value {unknown[0]!r}: not a sensor minion of the plan. Fix: one of "
                                 f"{sensors}, or leave minions out for all")
    found = {}
    for group in plan.get("groups") or []:
        if group["cpu"] not in chosen:
            continue
        entry = found.setdefault((group["influxdb"], group["influxdb_database"]), {
            "cpu": group["cpu"], "minion": group["influxdb"], "database": group["influxdb_database"], "sensors": []})
        entry["sensors"] = sorted(set(entry["sensors"]) | {m for m in group["sensors"] if not asked or m in asked})
    return [e for _k, e in sorted(found.items()) if e["sensors"]]


def monitor_names(plan, minion):
    """The names of the stack's own containers on ``minion`` (sensor, and databases or formulas
    placed there): their energy is the monitor's, reported apart."""
    return sorted(c["name"] for c in (plan.get("hosts") or {}).get(minion, {}).get("containers") or [])
