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

log = logging.getLogger(__name__)

__virtualname__ = "energy_archive"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import archive as archive_core, health, influx, names, plan, sizing, topology
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)

try:
    import docker  # noqa: F401  pylint: disable=unused-import

    HAS_DOCKER_SDK = True
except ImportError:
    HAS_DOCKER_SDK = False

try:
    from salt.exceptions import CommandExecutionError
except ImportError:  # pragma: no cover

    class CommandExecutionError(Exception):
        pass


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_archive module needs the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    return energy_core.virtual(__virtualname__, "the energy_archive module", docker_sdk=HAS_DOCKER_SDK)


def _fail(exc):
    raise CommandExecutionError(str(exc)) from None


TRANSFER_DIR = "energy/transfer"


def _transfer_dir():
    path = os.path.join(__opts__["cachedir"], TRANSFER_DIR)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _influx_holding(database):
    """This minion's InfluxDB container of the plan that holds ``database``, and its inspection."""
    conf = __salt__["energy.config"](secrets=True)
    if conf["influxdb"]["version"] != 1:
        _fail(archive_core.ArchiveError(
            "energy:influxdb:version: bad value 2: energy.backup, energy.restore and energy.export read InfluxDB 1.x "
            "(influxd backup -portable, InfluxQL). Fix: with InfluxDB 2 use the influx CLI in the container "
            "(influx backup / influx restore, with the admin token)"))
    for container in plan.node(__salt__["energy.plan"](conf, secrets=True), __opts__["id"])["containers"]:
        if container["component"] == "influxdb" and database in [d["name"] for d in container["databases"]]:
            try:
                info = __salt__["docker.inspect_container"](container["name"])
            except Exception:  # pylint: disable=broad-except
                info = None
            if not info or not (info.get("State") or {}).get("Running"):
                _fail(archive_core.ArchiveError(
                    f"InfluxDB container {container['name']} on {__opts__['id']} is not running. Fix: salt-run "
                    "state.orchestrate energy.orch (or end its maintenance window), then try again"))
            return container, info
    _fail(archive_core.ArchiveError(f"database {database!r}: no InfluxDB of the plan on {__opts__['id']} holds it. "
                                    "Fix: a database of the current plan (salt-run energy.summary shows them)"))
    return None, None  # unreachable


def _data_dir(info):
    """Where the InfluxDB container's /var/lib/influxdb is on this host."""
    mount = next((m for m in info.get("Mounts") or [] if m.get("Destination") == "/var/lib/influxdb"), None)
    if not mount or not mount.get("Source"):
        _fail(archive_core.ArchiveError(f"InfluxDB container {info.get('Name')} has no volume on /var/lib/influxdb"))
    return mount["Source"]


def _bind_address(info):
    """``influxd backup/restore -host``: the RPC address the server listens on (INFLUXDB_BIND_ADDRESS
    of the container, else InfluxDB's default 127.0.0.1:8088, inside the container)."""
    for item in (info.get("Config") or {}).get("Env") or []:
        if item.startswith("INFLUXDB_BIND_ADDRESS="):
            address = item.split("=", 1)[1]
            return ("127.0.0.1" + address) if address.startswith(":") else address
    return "127.0.0.1:8088"


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
    container, info = _influx_holding(database)
    data_dir = _data_dir(info)
    stamp = names.safe_minion(str(job or int(time.time())))
    where = archive_core.time_filter(since, until)
    points = influx.counts(container["url"], database, where)
    need = sizing.used_bytes(os.path.join(data_dir, "data", database)) or 0
    for place, free in ((f"the volume of {container['name']}", health.free_bytes(data_dir)),
                        (f"{__opts__['cachedir']} on {__opts__['id']}", health.free_bytes(_transfer_dir()))):
        if free < need + 16 * 2**20:
            _fail(archive_core.ArchiveError(
                f"no space for the backup of {database}: it needs about {topology.human(need)} on {place}, which "
                f"has {topology.human(free)} free. Fix: free space there, or back up a shorter range "
                "(since=/until=)"))
    inside = f"energy-backup-{stamp}"
    argv = ["influxd", "backup", "-portable", "-host", _bind_address(info), "-database", database]
    if since is not None:
        argv += ["-start", archive_core.rfc3339(since)]
    if until is not None:
        argv += ["-end", archive_core.rfc3339(until)]
    target = os.path.join(data_dir, inside)
    archive = os.path.join(_transfer_dir(), f"{inside}-{database}.tar.gz")
    try:
        code, output = _exec(container["name"], argv + [f"/var/lib/influxdb/{inside}"])
        if code != 0:
            _fail(archive_core.ArchiveError(f"influxd backup of {database} in {container['name']} failed "
                                            f"(exit {code}): {output.strip()[-1500:]}"))
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(target, arcname="backup")
    finally:
        shutil.rmtree(target, ignore_errors=True)
    size, digest = os.path.getsize(archive), archive_core.sha256_of(archive)
    edges = {}
    if points.get(archive_core.MEASUREMENT):
        for func in ("FIRST", "LAST"):  # asked together, both would answer the range's start
            one = influx.query(container["url"], f'SELECT {func}("power") FROM "{archive_core.MEASUREMENT}"{where}',
                                    db=database, epoch="ns")
            edges[func] = ((one.get("series") or [{}])[0].get("values") or [[None]])[0][0]
    first, last = edges.get("FIRST"), edges.get("LAST")
    if upload:
        _push(archive, upload)
    return {"database": database, "container": container["name"], "size": size, "sha256": digest,
            "points": points, "first": archive_core.rfc3339(first) if first else None,
            "last": archive_core.rfc3339(last) if last else None, "seconds": round(time.monotonic() - started, 2)}


def _safe_extract(tar, dest):
    for member in tar.getmembers():
        path = os.path.realpath(os.path.join(dest, member.name))
        if not path.startswith(os.path.realpath(dest) + os.sep) or not (member.isfile() or member.isdir()):
            _fail(archive_core.ArchiveError(f"archive member {member.name!r} is not a plain file under the archive"))
    tar.extractall(dest)  # nosec: every member checked above


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
    import shutil  # pylint: disable=import-outside-toplevel
    import tarfile  # pylint: disable=import-outside-toplevel

    started = time.monotonic()
    transfer = os.path.realpath(_transfer_dir())
    archive = os.path.realpath(str(archive))
    if not archive.startswith(transfer + os.sep) or not os.path.isfile(archive):
        _fail(archive_core.ArchiveError(f"archive {archive!r} is not a file under {transfer}"))
    try:
        if archive_core.sha256_of(archive) != sha256:
            _fail(archive_core.ArchiveError(f"archive {os.path.basename(archive)} arrived damaged (SHA-256 differs)"))
        container, info = _influx_holding(database)
        data_dir = _data_dir(info)
        stamp = names.safe_minion(str(job or int(time.time())))
        inside = f"energy-restore-{stamp}"
        target = os.path.join(data_dir, inside)
        temporary = f"{database}_restore_{stamp}"[:200]
        url = container["url"]
        try:
            os.makedirs(target, mode=0o700, exist_ok=True)
            with tarfile.open(archive, "r:gz") as tar:
                _safe_extract(tar, target)
            argv = ["influxd", "restore", "-portable", "-host", _bind_address(info),
                    "-db", source_database or database, "-newdb", temporary, f"/var/lib/influxdb/{inside}/backup"]
            code, output = _exec(container["name"], argv)
            if code != 0:
                _fail(archive_core.ArchiveError(f"influxd restore into {container['name']} failed (exit {code}): "
                                                f"{output.strip()[-1500:]}"))
            expected = archive_core.points_of(points)
            if points is None or expected:  # a manifest that counts no point has nothing to wait for
                _restored(url, temporary, expected, float(wait))
            into = influx.default_policy(url, database) or "autogen"
            copied = {}
            for row in (influx.query(url, f'SHOW RETENTION POLICIES ON "{temporary}"').get("series")
                        or [{}])[0].get("values") or []:
                result = influx.query(
                    url, f'SELECT * INTO "{database}"."{into}".:MEASUREMENT FROM "{temporary}"."{row[0]}"./.*/ GROUP BY *',
                    method="POST", timeout=3600)
                for series in result.get("series") or []:
                    for values in series.get("values") or []:
                        copied["written"] = copied.get("written", 0) + int(values[-1] or 0)
            if copied.get("written", 0) < sum(expected.values()):
                _fail(archive_core.ArchiveError(
                    f"restore of {database} on {__opts__['id']}: {copied.get('written', 0)} points written, the backup "
                    f"holds {sum(expected.values())}. Fix: run the restore again (a point already there is "
                    "overwritten, not doubled)"))
        finally:
            try:
                influx.query(url, f'DROP DATABASE "{temporary}"', method="POST")
            except (OSError, RuntimeError) as exc:
                log.warning("energy restore: cannot drop the temporary database %s: %s", temporary, exc)
            shutil.rmtree(target, ignore_errors=True)
    finally:
        os.remove(archive)
    return {"database": database, "container": container["name"], "written": copied.get("written", 0),
            "points": influx.counts(url, database), "seconds": round(time.monotonic() - started, 2)}


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
        _fail(archive_core.ArchiveError(f"format: bad value {fmt!r}: one of {', '.join(archive_core.FORMATS)}"))
    started = time.monotonic()
    container, _info = _influx_holding(database)
    url = container["url"]
    where = archive_core.time_filter(since, until)
    stamp = names.safe_minion(str(job or int(time.time())))
    path = os.path.join(_transfer_dir(), f"energy-export-{stamp}-{database}.{fmt}.gz")
    rows = 0
    with gzip.open(path, "wt", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            rows_of = archive_core.CsvRows(cpu)
            statement = (f'SELECT "power" FROM "{archive_core.MEASUREMENT}"{where} '
                         'GROUP BY "sensor","target","scope"')
            for series in influx.stream(url, statement, db=database, epoch="ns"):
                for row in rows_of.feed(series):
                    writer.writerow(row)
                    rows += 1
            for row in rows_of.flush():
                writer.writerow(row)
                rows += 1
        else:
            keys = influx.query(url, f'SHOW FIELD KEYS FROM "{archive_core.MEASUREMENT}"', db=database)
            types = {r[0]: r[1] for s in keys.get("series") or [] for r in s.get("values") or []}
            statement = f'SELECT * FROM "{archive_core.MEASUREMENT}"{where} GROUP BY *'
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
