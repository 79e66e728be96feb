"""
The minion side of ``salt-run energy.report``, ``energy.mark`` and ``energy.marks``: on the minion
that holds an InfluxDB of the plan, the sums of a window (read slice by slice, each streamed in
chunks: no unbounded query), the marks written and read; on a sensor minion, the names of the
containers behind SmartWatts' targets. Every answer is checked on the master (untrusted input).

.. code-block:: bash

    salt ctl energy_report.marks power_intel_xeon
"""

import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "energy_report"

try:  # imported from a checkout (or extmods) without Salt's loader: the core is beside this folder
    import energy_core  # noqa: F401  pylint: disable=unused-import
except ImportError:
    sys.path += [os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), d) for d in ("_utils", "utils")]
try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import experiment, influx, report, report_names, report_view
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_report module needs the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    return __virtualname__


def _url_of(database):
    """The URL of this minion's InfluxDB of the plan that holds ``database``."""
    conf = __salt__["energy.config"]()
    if conf["influxdb"]["version"] != 1:
        raise CommandExecutionError(
            "energy:influxdb:version: bad value 2: energy.report, energy.mark and energy.marks read and write "
            "InfluxDB 1.x (InfluxQL over /query, line protocol over /write). Fix: energy:influxdb:version: 1 "
            "(SmartWatts 2.1.2), or query InfluxDB 2 with its own tools (influx query, Flux)")
    for container in __salt__["energy.node"]()["containers"]:
        if container["component"] == "influxdb" and database in [d["name"] for d in container["databases"]]:
            return container["url"]
    raise CommandExecutionError(f"database {database!r}: no InfluxDB of the plan on {__opts__['id']} holds it. Fix: a "
                                "database of the current plan (salt-run energy.summary shows them)")


def read(database, since, until, period_s, buckets=0):
    """
    The sums of ``database`` over ``[since, until)`` (nanoseconds): per sensor, RAPL's and the
    model's joules, ticks, gaps and the model's error histogram; per target, joules per scope,
    ticks, peak watts (``energy_core.report.Accumulator``). The window is read ``SLICE_S`` seconds
    at a time, each answer streamed in chunks.

    CLI Example:

    .. code-block:: bash

        salt ctl energy_report.read power_intel_xeon 1795687200000000000 1795687260000000000 1.0
    """
    url = _url_of(database)
    try:
        found = report.Accumulator(int(since), int(until), float(period_s), int(buckets))
        for start, end in report.slices(int(since), int(until)):
            for series in influx.stream(url, report.statement(start, end), db=database, epoch="ns"):
                found.feed(series)
            found.close_slice()
    except (report.ReportError, RuntimeError, OSError, ValueError) as exc:
        raise CommandExecutionError(f"reading {database} at {url}: {exc}") from exc
    return found.result()


def mark(database, name, phase, note="", time_ns=None):
    """
    Write the mark ``name`` ``phase`` (start or end) into ``database`` at ``time_ns`` (the master's
    time of ``salt-run energy.mark``).

    CLI Example:

    .. code-block:: bash

        salt ctl energy_report.mark power_intel_xeon run-42 start note="baseline" time_ns=1795687200000000000
    """
    import time  # pylint: disable=import-outside-toplevel

    try:
        name, phase, note = experiment.check_mark(name, phase, note)
    except experiment.MarkError as exc:
        raise CommandExecutionError(str(exc)) from exc
    stamp = int(time_ns) if time_ns is not None else time.time_ns()
    url = _url_of(database)
    params = urllib.parse.urlencode({"db": database, "precision": "ns"})
    body = experiment.line(name, phase, note, stamp).encode()
    request = urllib.request.Request(f"{url}/write?{params}", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            if resp.status != 204:
                raise CommandExecutionError(f"InfluxDB {url} answered HTTP {resp.status} to the mark")
    except urllib.error.HTTPError as exc:
        raise CommandExecutionError(f"InfluxDB {url} refused the mark: HTTP {exc.code} "
                                    f"{exc.read(500).decode(errors='replace')}") from exc
    except OSError as exc:
        raise CommandExecutionError(f"InfluxDB {url} did not take the mark: {exc}") from exc
    return {"database": database, "time_ns": stamp}


def marks(database):
    """
    The marks in ``database``: ``[{"time" (ns), "name", "phase", "note"}]``.

    CLI Example:

    .. code-block:: bash

        salt ctl energy_report.marks power_intel_xeon
    """
    url = _url_of(database)
    try:
        series = list(influx.stream(url, experiment.LIST_STATEMENT, db=database, epoch="ns"))
    except (RuntimeError, OSError, ValueError) as exc:
        raise CommandExecutionError(f"reading the marks of {database} at {url}: {exc}") from exc
    return experiment.marks_of(series)


def _docker_containers():
    """``[{"id", "name", "labels"}]`` of every container Docker has (exited ones too): one list call."""
    import docker  # pylint: disable=import-outside-toplevel

    client = docker.APIClient(base_url="unix://var/run/docker.sock", timeout=30)
    try:
        return [{"id": c["Id"], "name": (c.get("Names") or ["/"])[0].lstrip("/"), "labels": c.get("Labels") or {}}
                for c in client.containers(all=True)]
    finally:
        client.close()


def names(targets):
    """
    The container behind each of SmartWatts' ``targets`` that ran on this minion: ``{target:
    {"name", "project", "service", "id"} or None}``, from Docker (the containers it still has)
    and from the record of container starts (``energy_core.report_names``) for those removed.

    CLI Example:

    .. code-block:: bash

        salt node-a energy_report.names '["/docker/4f1c...", "web-1"]'
    """
    if not isinstance(targets, list) or len(targets) > report_view.MAX_TARGETS:
        raise CommandExecutionError(f"targets: a list of at most {report_view.MAX_TARGETS} target names")
    try:
        live = _docker_containers()
    except Exception as exc:  # pylint: disable=broad-except  (no Docker here: the record alone)
        log.warning("energy: Docker did not list its containers (%s): names from the record only", exc)
        live = []
    path = os.path.join(__opts__["cachedir"], report_names.RECORD_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            records = report_names.read_records(handle)
    except OSError:
        records = ({}, {})
    return report_names.resolve([str(t) for t in targets], live, records)
