"""
The experiment's answer, on the master: ``salt-run energy.report``, ``energy.mark`` and
``energy.marks`` (the ``energy`` runner keeps those names and calls these; ``salt-run
energy_report.<name>`` is the same).

Where each InfluxDB is comes from the plan the master computes itself (``energy.plan``); the minion
that holds it reads the window in slices (``energy_report.read``) and each sensor minion names its
containers (``energy_report.names``); both answers are checked (``energy_core.report_view.checked``,
``energy_core.report_names.checked``) before anything is added up (``energy_core.report_view``).

.. code-block:: bash

    salt-run energy.report since=20m
"""

import json
import logging
import os
import sys

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "energy_report"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import (
        archive, experiment as experiment_core, report as report_core, report_names, report_plot, report_view, trust)
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced to the master yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the {__virtualname__} runner needs the formula's energy_core utils on the master "
                       f"({CORE_ERROR}): run salt-run saltutil.sync_utils (energy.orch does)")
    return __virtualname__


OUTS = ("text", "json", "csv")


class _Refused(Exception):
    """The runner ends with this message (a bad input, a minion that failed)."""


def _failed(message):
    """End a runner with an error: salt-run prints it and exits non-zero."""
    __context__["retcode"] = 1
    log.error("energy: %s", message)
    return {"result": False, "error": message, "retcode": 1}


def _ask(minion, fun, timeout, **kwarg):
    """``fun`` on ``minion``: its return, or _Refused with its error."""
    import salt.client  # pylint: disable=import-outside-toplevel

    with salt.client.get_local_client(mopts=__opts__) as client:
        found = client.cmd([minion], fun, kwarg=kwarg, tgt_type="list", timeout=timeout, full_return=True)
    answers, errors = trust.asked(found)
    if minion not in answers:
        raise _Refused(f"{fun} on {minion} failed: {errors.get(minion, 'no answer')}")
    return answers[minion]


def _plan():
    try:
        return __salt__["energy.plan"]()
    except CommandExecutionError as exc:
        raise _Refused(f"no plan to report on: {exc}") from exc


def _all_marks(plan, timeout):
    """The marks of every InfluxDB database of the plan, merged (a database that fails is logged)."""
    found = []
    for entry in report_view.databases(plan):
        try:
            found.append(experiment_core.checked(_ask(entry["minion"], "energy_report.marks", timeout,
                                                      database=entry["database"])))
        except _Refused as exc:
            log.warning("energy: %s", exc)
    return experiment_core.merged(*found)


def _window(plan, since, until, experiment, timeout):
    """``(since_ns, until_ns, notes)`` of the report."""
    import time  # pylint: disable=import-outside-toplevel

    now = time.time()
    if experiment:
        start, end, running = experiment_core.window(_all_marks(plan, timeout), str(experiment), int(now * 1e9))
        return start, end, [f"experiment {experiment} has no end mark yet: reported up to now"] if running else []
    if since in (None, ""):
        raise report_core.ReportError("since: missing: a report needs a window. Fix: since=20m (or an RFC 3339 time, "
                                      "or seconds since the epoch), or experiment=<name>")
    start = archive.parse_time(since, now, "since")
    end = archive.parse_time(until, now, "until") if until not in (None, "") else int(now * 1e9)
    report_core.slices(start, end)  # raises on an empty window
    return start, end, []


def _read(plan, entries, window, buckets, timeout):
    """``{sensor: (cpu, machine sums, target sums, period_s)}`` from each database's minion, checked."""
    found = {}
    for entry in entries:
        config = experiment_core.cpu_config(plan, entry["cpu"])
        period_s = (config["frequency_ms"] or 1000) / 1000
        answer = _ask(entry["minion"], "energy_report.read", timeout, database=entry["database"], since=window[0],
                      until=window[1], period_s=period_s, buckets=buckets)
        sums = report_view.checked(entry["minion"], answer, entry["sensors"], window[0], window[1], period_s,
                                        buckets)
        for sensor, machine in sums["machines"].items():
            found[sensor] = (entry["cpu"], machine, sums["targets"].get(sensor) or {}, period_s)
    return found


def _names(minion, targets, timeout):
    """The names ``minion`` gives its targets, checked; {} (all unresolved) when it fails."""
    asked = sorted(t for t in targets if t not in report_core.SPECIAL)
    try:
        answer = _ask(minion, "energy_report.names", timeout, targets=asked)
    except _Refused as exc:
        log.warning("energy: %s: its targets keep their cgroup paths", exc)
        return {}
    found, problems = report_names.checked(minion, asked, answer)
    for problem in problems:
        log.warning("energy: %s", problem)
    return found


def _document(plan, window, read, patterns, experiment, notes, timeout):
    machines, per_cpu = [], {}
    for sensor, (cpu, sums, targets, period_s) in sorted(read.items()):
        named = _names(sensor, targets, timeout)
        found = report_view.machine(sensor, cpu, sums, targets, named, report_view.monitor_names(plan, sensor),
                                         window, period_s, patterns)
        machines.append(found)
        per_cpu.setdefault(cpu, []).append(found)
    cpus = [report_view.cpu_entry(cpu, found, plan["cpus"][cpu]["sensor"].get("mode"),
                                       experiment_core.cpu_config(plan, cpu)) for cpu, found in sorted(per_cpu.items())]
    return report_view.document(window[0], window[1], machines, cpus, experiment, notes)


def _plot(doc, path, buckets):
    """Write the picture to ``path`` (a new file); a note saying what happened."""
    fmt = os.path.splitext(str(path))[1].lstrip(".").lower()
    if fmt not in ("png", "svg"):
        raise report_core.ReportError(f"plot: bad value {path!r}: a .png or .svg file name. Fix: plot=/tmp/run.png")
    directory, name = os.path.split(os.path.abspath(str(path)))
    try:
        picture = report_plot.draw(doc, buckets, fmt)
    except ImportError:
        return report_plot.INSTALL.format(python=sys.executable)
    box = trust.outbox(directory)
    try:
        box.create(name, mode=0o644).write(picture)
    except FileExistsError:
        return f"plot: {path} exists, and the report never overwrites a file: nothing drawn. Fix: a new name"
    finally:
        box.close()
    return f"plot: {path}"


def _public(doc):
    """The document without the plot's time buckets."""
    for found in doc["machines"]:
        for row in found["containers"] + found["monitor"]:
            row.pop("buckets", None)
    return doc


def report(since=None, until=None, experiment=None, cpus=None, minions=None, containers=None, out="text",
           plot=None, compare=None, timeout=600):
    """
    Joules per container, machine and CPU name over a window, and how far to trust them.

    since, until
        RFC 3339, seconds since the epoch, or a duration before now (``20m``); until defaults to now.
    experiment
        Instead of since/until: the latest run of the experiment marked with ``salt-run energy.mark``.
    cpus, minions, containers
        Comma-separated filters: CPU names, sensor minions, container names (shell patterns, matched
        on the name, the target or ``project/service``).
    out
        ``text`` (a table), ``json`` (the keys of ``energy_core.report_view``) or ``csv`` (tidy: one
        row per machine x container, units in the column names).
    plot
        A new ``.png`` or ``.svg`` file on the master: power per container over the window, stacked
        per machine, and joules per container (matplotlib on the master; without it the report
        says how to install it, and gives the numbers).
    compare
        A JSON report written earlier (``out=json``): what differs in the configurations.

    CLI Example:

    .. code-block:: bash

        salt-run energy.report since=2026-11-26T10:00:00Z until=2026-11-26T10:20:00Z
        salt-run energy.report experiment=run-42 out=json
        salt-run energy.report since=1h minions=node-a containers='web*' out=csv plot=/tmp/run.png
    """
    try:
        if out not in OUTS:
            raise report_core.ReportError(f"out: bad value {out!r}: one of {', '.join(OUTS)}")
        before = _earlier(compare)
        plan = _plan()
        entries = report_view.databases(plan, cpus, minions)
        since_ns, until_ns, notes = _window(plan, since, until, experiment, timeout)
        buckets = report_core.MAX_BUCKETS // 4 if plot else 0
        read = _read(plan, entries, (since_ns, until_ns), buckets, timeout)
        patterns = report_view._names(containers, "containers")  # pylint: disable=protected-access
        doc = _document(plan, (since_ns, until_ns), read, patterns, experiment, notes, timeout)
        if before is not None:
            doc["compare"] = experiment_core.compare(before, doc)
            doc["notes"] += [f"compared with {compare}: {line}" for line in doc["compare"]]
        if plot:
            doc["notes"].append(_plot(doc, plot, buckets))
    except (report_core.ReportError, archive.ArchiveError, experiment_core.MarkError, trust.Untrusted,
            _Refused) as exc:
        return _failed(str(exc))
    doc = _public(doc)
    if out == "json":
        return json.dumps(doc, indent=1, sort_keys=True)
    if out == "csv":
        return report_view.tidy_csv(doc)
    return report_view.text(doc, archive.rfc3339)


def _earlier(compare):
    if not compare:
        return None
    try:
        with open(compare, encoding="utf-8") as handle:
            found = json.load(handle)
    except (OSError, ValueError) as exc:
        raise report_core.ReportError(f"compare: bad value {compare!r}: not a readable JSON report ({exc}). Fix: a "
                                      "file written from salt-run energy.report out=json") from exc
    if not isinstance(found, dict) or not isinstance(found.get("cpus"), list):
        raise report_core.ReportError(f"compare: bad value {compare!r}: not a report of salt-run energy.report "
                                      "out=json (no cpus list)")
    return found


def mark(name, phase, note="", timeout=60):
    """
    Mark a phase of an experiment (``start`` or ``end``) in every InfluxDB of the plan, at this
    master's time; the dashboards show marks as annotations, ``salt-run energy.report
    experiment=<name>`` reports the window between them, ``salt-run energy.marks`` lists them.

    CLI Example:

    .. code-block:: bash

        salt-run energy.mark run-42 start note="10 clients"
        salt-run energy.mark run-42 end
    """
    import time  # pylint: disable=import-outside-toplevel

    try:
        name, phase, note = experiment_core.check_mark(name, phase, note)
        plan = _plan()
        stamp = time.time_ns()
        written = []
        for entry in report_view.databases(plan):
            _ask(entry["minion"], "energy_report.mark", timeout, database=entry["database"], name=name, phase=phase,
                 note=note, time_ns=stamp)
            written.append(f"{entry['minion']}/{entry['database']}")
    except (experiment_core.MarkError, report_core.ReportError, _Refused) as exc:
        return _failed(str(exc))
    if not written:
        return _failed("the plan has no InfluxDB to mark: deploy the stack first (salt-run state.orchestrate energy.orch)")
    return {"result": True, "mark": f"{name} {phase}", "time": archive.rfc3339(stamp), "written": written}


def marks(timeout=60):
    """
    The experiments marked in the plan's InfluxDBs: each start with its end (or still running).

    CLI Example:

    .. code-block:: bash

        salt-run energy.marks
    """
    import time  # pylint: disable=import-outside-toplevel

    now = time.time_ns()
    try:
        found = _all_marks(_plan(), timeout)
    except (report_core.ReportError, _Refused) as exc:
        return _failed(str(exc))
    return [{"name": run["name"], "since": archive.rfc3339(run["since"]),
             "until": archive.rfc3339(run["until"]) if run["until"] else None,
             "seconds": round(((run["until"] or now) - run["since"]) / 1e9, 3), "note": run["note"]}
            for run in experiment_core.experiments(found)]
