"""
The ``energy_archive`` execution module: what ``salt-run energy.backup``, ``energy.restore`` and
``energy.export`` ask of the minion that runs an InfluxDB of the plan. Archives travel with Salt
itself: ``cp.push`` to the master (``file_recv``), and ``cp.recv_chunked`` to the minion (what
``salt-cp --chunked`` does).

.. code-block:: bash

    salt ctl energy_archive.backup_influxdb power_intel_xeon upload=energy-backup/x/power.tar.gz
"""

import logging
import os
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "energy_archive"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import archive as archive_core, health, influx, influx_archive, names, plan, sizing
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_archive module needs the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    return energy_core.virtual(__virtualname__, "the energy_archive module")


def _fail(exc):
    raise CommandExecutionError(str(exc)) from None


TRANSFER_DIR = "energy/transfer"


def _transfer_dir():
    path = os.path.join(__opts__["cachedir"], TRANSFER_DIR)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _influx_holding(database):
    """This minion's InfluxDB container of the plan that holds ``database``, its inspection and data directory."""
    conf = __salt__["energy.config"](secrets=True)
    if conf["influxdb"]["version"] != 1:
        _fail(influx_archive.VERSION_ERROR)
    container = influx_archive.holding(plan.node(__salt__["energy.plan"](conf, secrets=True), __opts__["id"]), database)
    if container is None:
        _fail(f"database {database!r}: no InfluxDB of the plan on {__opts__['id']} holds it. "
              "Fix: a database of the current plan (salt-run energy.summary shows them)")
    try:
        info = __salt__["docker.inspect_container"](container["name"])
    except Exception:  # pylint: disable=broad-except
        info = None
    if not info or not (info.get("State") or {}).get("Running"):
        _fail(f"InfluxDB container {container['name']} on {__opts__['id']} is not running. Fix: salt-run "
              "state.orchestrate energy.orch (or end its maintenance window), then try again")
    try:
        return container, info, influx_archive.data_dir(info)
    except archive_core.ArchiveError as exc:
        return _fail(exc)


def _exec(name, argv, timeout=3600):
    """Run ``argv`` (a list, no shell) in container ``name``; ``(exit code, output)``."""
    import docker as docker_sdk  # pylint: disable=import-outside-toplevel

    client = docker_sdk.from_env(timeout=timeout)
    try:
        result = client.containers.get(name).exec_run(argv)
    finally:
        client.close()
    return result.exit_code, (result.output or b"").decode(errors="replace")[-4000:]


def _push(path, upload):
    """Send ``path`` to the master (``cp.push``; the master keeps it under its cachedir) and remove it."""
    if not __salt__["cp.push"](path, upload_path=upload, remove_source=True):
        _fail(archive_core.ArchiveError(
            f"cp.push of {os.path.basename(path)} ({os.path.getsize(path)} bytes) to the master failed: the master "
            "needs file_recv: True and a file_recv_max_size (MB) above the archive's size"))


def backup_influxdb(database, since=None, until=None, upload=None, job=None):
    """
    A consistent backup of ``database`` taken on its live InfluxDB (``influxd backup -portable`` in
    the container, ``-start``/``-end`` from ``since``/``until`` in nanoseconds), packed as one
    .tar.gz and pushed to the master under ``upload`` (``cp.push``). Returns its size, SHA-256,
    points per measurement, first and last point and the seconds it took. What
    ``salt-run energy.backup`` runs on each InfluxDB host.

    CLI Example:

    .. code-block:: bash

        salt ctl energy_archive.backup_influxdb power_intel_xeon upload=energy-backup/x/power.tar.gz
    """
    import shutil  # pylint: disable=import-outside-toplevel
    import tarfile  # pylint: disable=import-outside-toplevel

    started = time.monotonic()
    container, info, data_dir = _influx_holding(database)
    stamp = names.safe_minion(str(job or int(time.time())))
    where = archive_core.time_filter(since, until)
    points = influx.counts(container["url"], database, where)
    need = sizing.used_bytes(os.path.join(data_dir, "data", database)) or 0
    problem = influx_archive.space_problem(database, need, (
        (f"the volume of {container['name']}", health.free_bytes(data_dir)),
        (f"{__opts__['cachedir']} on {__opts__['id']}", health.free_bytes(_transfer_dir()))))
    if problem:
        _fail(problem)
    inside = f"energy-backup-{stamp}"
    target = os.path.join(data_dir, inside)
    archive = os.path.join(_transfer_dir(), f"{inside}-{database}.tar.gz")
    try:
        code, output = _exec(container["name"],
                             influx_archive.backup_argv(influx_archive.bind_address(info), database, since, until, inside))
        if code != 0:
            _fail(influx_archive.failed(f"backup of {database} in {container['name']}", code, output))
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(target, arcname="backup")
    finally:
        shutil.rmtree(target, ignore_errors=True)
    size, digest = os.path.getsize(archive), archive_core.sha256_of(archive)
    edges = {func: influx_archive.first_value(influx.query(container["url"], influx_archive.edge_statement(func, where),
                                                            db=database, epoch="ns"))
             for func in ("FIRST", "LAST") if points.get(archive_core.MEASUREMENT)}
    first, last = edges.get("FIRST"), edges.get("LAST")
    if upload:
        _push(archive, upload)
    return {"database": database, "container": container["name"], "size": size, "sha256": digest,
            "points": points, "first": archive_core.rfc3339(first) if first else None,
            "last": archive_core.rfc3339(last) if last else None, "seconds": round(time.monotonic() - started, 2)}


def _restored(url, database, expected, wait):
    """Points per measurement of ``database``, a copy ``influxd restore`` just made, once InfluxDB
    shows them: it opens the restored shards in the background, and asked at once it answers with
    fewer points, none or "shard is disabled" for a few seconds. With ``expected`` (points per
    measurement, from the backup's manifest), waits until each is there, at most ``wait`` s, then
    fails naming what is missing; without, until two answers a second apart agree."""
    deadline = time.monotonic() + wait
    previous, found, error = None, None, None
    while True:
        try:
            found, error = influx.counts(url, database), None
        except (RuntimeError, OSError, ValueError) as exc:  # "shard is disabled", or busy opening them
            found, error = None, str(exc)
        if found is not None:
            if expected and not archive_core.shortfall(expected, found):
                return found
            if not expected and found and found == previous:
                return found
            previous = found
        if time.monotonic() >= deadline:
            if not expected and found is not None:
                return found
            missing = "; ".join(f"{name}: {have} of {want}"
                                for name, (have, want) in archive_core.shortfall(expected, found or {}).items())
            _fail(archive_core.ArchiveError(
                f"the restored copy {database} does not show the backup's points after {wait} s "
                f"({error or missing}); nothing was copied into the database. Fix: check the InfluxDB "
                "container's log and free space, then run the restore again"))
        time.sleep(1)


def restore_influxdb(archive, database, sha256, source_database=None, job=None, points=None, wait=120):
    """
    Restore the backup ``archive`` (a file under this minion's cachedir/energy/transfer, put there
    by ``salt-run energy.restore``; checked against ``sha256``) into ``database`` of this minion's
    InfluxDB: ``influxd restore -portable`` into a temporary database (InfluxDB refuses to restore
    over an existing one), then ``SELECT * INTO ... GROUP BY *`` per retention policy, then the
    temporary database is dropped. A point already there (same series, same time) is overwritten
    by the same point: no duplicates. ``points`` (points per measurement, from the backup's
    manifest): the copy waits, at most ``wait`` s, until the temporary database shows them, and
    the restore fails when fewer are written. Returns points per measurement copied and the
    seconds taken.

    CLI Example:

    .. code-block:: bash

        salt ctl energy_archive.restore_influxdb /var/cache/salt/minion/energy/transfer/x.tar.gz power_intel_xeon <sha256>
    """
    started = time.monotonic()
    transfer = os.path.realpath(_transfer_dir())
    archive = os.path.realpath(str(archive))
    if not archive.startswith(transfer + os.sep) or not os.path.isfile(archive):
        _fail(f"archive {archive!r} is not a file under {transfer}")
    try:
        if archive_core.sha256_of(archive) != sha256:
            _fail(f"archive {os.path.basename(archive)} arrived damaged (SHA-256 differs)")
        container, info, data_dir = _influx_holding(database)
        stamp = names.safe_minion(str(job or int(time.time())))
        expected = archive_core.points_of(points)
        # a manifest that counts no point has nothing to wait for
        wait = float(wait) if points is None or expected else None
        written = _restore_into(container, info, data_dir, archive, (database, source_database or database), stamp,
                                expected, wait)
    finally:
        os.remove(archive)
    return {"database": database, "container": container["name"], "written": written,
            "points": influx.counts(container["url"], database), "seconds": round(time.monotonic() - started, 2)}


def _restore_into(container, info, data_dir, archive, databases, stamp, expected, wait):
    """``archive`` unpacked into the container's volume, ``influxd restore`` of its database
    ``databases[1]`` into a temporary one, whose points are copied into ``databases[0]``; the
    points written. Waits up to ``wait`` s for the copy to show ``expected`` (None: no wait)."""
    import shutil  # pylint: disable=import-outside-toplevel
    import tarfile  # pylint: disable=import-outside-toplevel

    database, source = databases
    inside = f"energy-restore-{stamp}"
    target = os.path.join(data_dir, inside)
    temporary = influx_archive.temporary_database(database, stamp)
    url = container["url"]
    try:
        os.makedirs(target, mode=0o700, exist_ok=True)
        with tarfile.open(archive, "r:gz") as tar:
            bad = influx_archive.unsafe_member([(m.name, m.isfile() or m.isdir()) for m in tar.getmembers()], target)
            if bad is not None:
                _fail(f"archive member {bad!r} is not a plain file under the archive")
            tar.extractall(target)  # nosec: every member checked above
        argv = influx_archive.restore_argv(influx_archive.bind_address(info), source, temporary, inside)
        code, output = _exec(container["name"], argv)
        if code != 0:
            _fail(influx_archive.failed(f"restore into {container['name']}", code, output))
        if wait is not None:
            _restored(url, temporary, expected, wait)
        into = influx.default_policy(url, database) or "autogen"
        policies = influx.query(url, influx_archive.policies_statement(temporary))
        count = sum(influx_archive.written(influx.query(
            url, influx_archive.copy_statement(database, into, temporary, row[0]), method="POST", timeout=3600))
            for row in (policies.get("series") or [{}])[0].get("values") or [])
        problem = influx_archive.short_restore(database, __opts__["id"], count, expected)
        if problem:
            _fail(problem)
        return count
    finally:
        try:
            influx.query(url, f'DROP DATABASE "{temporary}"', method="POST")
        except (OSError, RuntimeError) as exc:
            log.warning("energy restore: cannot drop the temporary database %s: %s", temporary, exc)
        shutil.rmtree(target, ignore_errors=True)


def export_influxdb(database, cpu, since=None, until=None, fmt="csv", upload=None, job=None):
    """
    Power per container of ``database`` over ``[since, until)`` (nanoseconds), as CSV rows
    (``time,minion,cpu,container,scope,watts``, the sockets of one time summed; no header) or as
    InfluxDB line protocol of the raw points, written gzip-compressed while InfluxDB streams its
    answer in chunks, then pushed to the master under ``upload``. Returns rows and bytes.

    CLI Example:

    .. code-block:: bash

        salt ctl energy_archive.export_influxdb power_intel_xeon "Intel Xeon" fmt=csv upload=energy-export/x.csv.gz
    """
    import csv  # pylint: disable=import-outside-toplevel
    import gzip  # pylint: disable=import-outside-toplevel

    if fmt not in archive_core.FORMATS:
        _fail(f"format: bad value {fmt!r}: one of {', '.join(archive_core.FORMATS)}")
    started = time.monotonic()
    container, _info, _dir = _influx_holding(database)
    url = container["url"]
    statement = influx_archive.export_statement(fmt, archive_core.time_filter(since, until))
    stamp = names.safe_minion(str(job or int(time.time())))
    path = os.path.join(_transfer_dir(), f"energy-export-{stamp}-{database}.{fmt}.gz")
    rows = 0
    with gzip.open(path, "wt", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            rows_of = archive_core.CsvRows(cpu)
            for series in influx.stream(url, statement, db=database, epoch="ns"):
                for row in rows_of.feed(series):
                    writer.writerow(row)
                    rows += 1
            for row in rows_of.flush():
                writer.writerow(row)
                rows += 1
        else:
            types = influx_archive.field_types(influx.query(url, influx_archive.FIELD_KEYS, db=database))
            for series in influx.stream(url, statement, db=database, epoch="ns"):
                for line in archive_core.line_protocol(series, types):
                    out.write(line + "\n")
                    rows += 1
    size = os.path.getsize(path)
    if upload:
        _push(path, upload)
    else:
        os.remove(path)
    return {"database": database, "rows": rows, "bytes": size, "seconds": round(time.monotonic() - started, 2)}
