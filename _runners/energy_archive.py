"""
Backups, restores and exports of the measurements, from the master: ``salt-run
energy.backup|restore|export`` (the ``energy`` runner keeps those names and calls these;
``salt-run energy_archive.<name>`` is the same).

The master trusts no minion: which minion holds which InfluxDB and database comes from the plan
the master computes itself (through ``energy_summary.summary``), and every value a minion returns
(sizes, SHA-256 digests, point and row counts, its cachedir) goes through ``energy_core.trust`` or
is refused with a log line naming the minion. Files are written only inside the directory given,
as new files that no link can redirect (``energy_core.trust.Outbox``).

.. code-block:: bash

    salt-run energy.backup
"""

import json
import logging
import os

log = logging.getLogger(__name__)

__virtualname__ = "energy_archive"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import archive as archive_core, names, trust
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced to the master yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the {__virtualname__} runner needs the formula's energy_core utils on the master "
                       f"({CORE_ERROR}): run salt-run saltutil.sync_utils (energy.orch does)")
    return __virtualname__


def _progress(message):
    """A line in salt-run's output while the runner works (and in the master's log)."""
    log.info("energy: %s", message)
    try:
        __jid_event__.fire_event({"message": message}, "progress")  # pylint: disable=undefined-variable
    except NameError:  # called outside salt-run (unit tests)
        pass


def _failed(message):
    """End a runner with an error: salt-run prints it and exits non-zero."""
    __context__["retcode"] = 1
    log.error("energy: %s", message)
    return {"result": False, "error": message, "retcode": 1}  # salt-run exits with retcode


def _client():
    import salt.client  # pylint: disable=import-outside-toplevel

    return salt.client.get_local_client(mopts=__opts__)


def _ask(minions, fun, timeout, **kwarg):
    """``fun`` on each of ``minions`` (a list): ``energy_core.trust.asked`` of the returns."""
    with _client() as client:
        return trust.asked(client.cmd(list(minions), fun, kwarg=kwarg, tgt_type="list", timeout=timeout,
                                           full_return=True))


def _facts(tgt):
    """The plan's topology with what runs (``energy_summary.summary`` as data)."""
    return __salt__["energy_summary.summary"](tgt=tgt, format="json", timeout=30)


def _pushed(minion, upload):
    """Where ``cp.push`` put a minion's file on this master."""
    return os.path.join(__opts__["cachedir"], "minions", minion, "files", upload)


def _check_file_recv():
    if not __opts__.get("file_recv"):
        raise archive_core.ArchiveError(
            "file_recv: bad value False in the master config: archives come back from the minions with cp.push. "
            "Fix: file_recv: True and file_recv_max_size (MB, default 100) above the largest database, in "
            "/etc/salt/master.d/, then restart salt-master")


def backup(dest=None, cpus=None, since=None, until=None, tgt="*", timeout=3600):
    """
    Back up the power measurements of the plan: for each InfluxDB database (one per CPU name; per
    machine with the dedicated strategy), a consistent backup taken on the live server
    (``influxd backup -portable`` in its container), brought back to the master with ``cp.push``,
    into ``<dest>/energy-backup-<time>/`` with ``manifest.json``: CPU name, database, host, time
    range, points per measurement, size, SHA-256 and the seconds each took.

    dest
        A directory on the master (default: the master's cachedir ``energy/backups``).
    cpus
        CPU names, comma-separated (default: all of the plan).
    since, until
        The time range: RFC 3339, seconds since the epoch, or a duration before now (``2h``);
        ``until`` defaults to now.

    The master needs ``file_recv: True`` and a ``file_recv_max_size`` (MB) above the largest archive.

    CLI Example:

    .. code-block:: bash

        salt-run energy.backup
        salt-run energy.backup dest=/srv/backups cpus="Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz" since=7d
    """
    import time  # pylint: disable=import-outside-toplevel

    started, now = time.monotonic(), time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    try:
        _check_file_recv()
        since_ns, until_ns = archive_core.backup_range(since, until, now)
        facts = _facts(tgt)
        targets = archive_core.backup_targets(facts, cpus)
        box = trust.outbox(dest, os.path.join(__opts__["cachedir"], "energy", "backups"))
    except archive_core.ArchiveError as exc:
        return _failed(str(exc))
    try:
        directory = box.subdir(f"energy-backup-{stamp}")
    except OSError as exc:
        box.close()
        return _failed(f"dest: bad value {dest!r}: cannot write there ({exc.strerror}). Fix: a directory the "
                       "salt-master user can write")
    try:
        entries = _back_up(directory, targets, stamp, timeout, since=since_ns, until=until_ns)
        if not entries:
            raise archive_core.ArchiveError("nothing to back up: the plan has no InfluxDB for these CPU names")
        manifest = archive_core.manifest(entries, since_ns, until_ns, facts["strategy"], time.monotonic() - started,
                                         now)
        directory.create(archive_core.MANIFEST, mode=0o644).write(json.dumps(manifest, indent=2, sort_keys=True).encode())
    except (archive_core.ArchiveError, trust.Untrusted, OSError) as exc:
        directory.remove_created()  # no half backup that looks whole
        box.remove_created()
        return _failed(str(exc))
    finally:
        directory.close()
        box.close()
    return {"result": True, "backup": directory.path, "databases": len(entries),
            "bytes": sum(e["size"] for e in entries), "seconds": manifest["seconds"],
            "points": {f"{e['host']}/{e['database']}": sum(e["points"].values()) for e in entries}}


def _back_up(directory, targets, stamp, timeout, **span):
    """Back up each ``(cpu, (minion, container, database))`` of the plan into ``directory``; the
    manifest's entries, from checked answers."""
    entries = []
    for i, (cpu, (minion, container, database)) in enumerate(targets, start=1):
        name = trust.file_name(f"influxdb-{names.safe_minion(minion)}-{database}.tar.gz")
        upload = f"energy-backup/{stamp}/{name}"
        _progress(f"backup {i}/{len(targets)}: {database} ({cpu}) on {minion}")
        answers, errors = _ask([minion], "energy_archive.backup_influxdb", timeout, database=database, upload=upload,
                               job=stamp, **span)
        if minion not in answers:
            raise archive_core.ArchiveError(f"backup of {database} on {minion} failed: "
                                            f"{errors.get(minion, 'no answer')}")
        got = trust.answer(minion, "energy_archive.backup_influxdb", answers[minion], trust.BACKUP)
        size = trust.keep(directory, minion, _pushed(minion, upload), name, got)
        entries.append({"kind": "influxdb", "cpu": cpu, "database": database, "host": minion,
                        "container": container, "file": name, "size": size, "sha256": got["sha256"],
                        "points": got["points"], "first": got["first"], "last": got["last"],
                        "seconds": got["seconds"]})
        _progress(f"backup {i}/{len(targets)}: {database} done, {size} bytes, "
                  f"{sum(got['points'].values())} points in {got['seconds']} s")
    return entries


CHUNK = 512 * 1024  # bytes per cp.recv_chunked call (salt-cp --chunked does the same)


def _send(minion, source, dest):
    """Copy a file of the master to ``dest`` on ``minion``, chunk by chunk (what salt-cp --chunked
    does with cp.recv_chunked)."""
    import base64  # pylint: disable=import-outside-toplevel

    with open(source, "rb") as handle, _client() as client:
        index = 0
        for block in iter(lambda: handle.read(CHUNK), b""):
            ret = client.cmd([minion], "cp.recv_chunked", [dest, base64.b64encode(block), index > 0, False, 0o600],
                             tgt_type="list", timeout=120)
            if (ret or {}).get(minion) is not True:
                raise archive_core.ArchiveError(f"sending {os.path.basename(source)} to {minion} failed: "
                                                f"{(ret or {}).get(minion, 'no answer')}")
            index += 1


def _restore_one(src, entry, target, job, timeout):
    """One backed-up database sent to its minion and restored there into ``target`` (minion,
    container, database); what was written, as the minion's answer says (checked)."""
    minion, _container, database = target
    cachedir, _ = _ask([minion], "config.get", 30, key="cachedir")
    if minion not in cachedir:
        raise archive_core.ArchiveError(f"minion {minion} did not answer")
    remote = trust.remote_path(minion, "config.get", "cachedir", cachedir[minion])
    remote = f"{remote}/energy/transfer/restore-{job.replace('_', '-')}.tar.gz"
    _send(minion, os.path.join(src, entry["file"]), remote)
    answers, errors = _ask([minion], "energy_archive.restore_influxdb", timeout, archive=remote, database=database,
                           sha256=entry["sha256"], source_database=entry["database"], job=job,
                           points=archive_core.points_of(entry.get("points")))
    if minion not in answers:
        raise archive_core.ArchiveError(f"restore of {entry['file']} into {database} on {minion} failed: "
                                        f"{errors.get(minion, 'no answer')}")
    got = trust.answer(minion, "energy_archive.restore_influxdb", answers[minion], trust.RESTORE)
    return {"file": entry["file"], "cpu": entry["cpu"], "host": minion, "database": database,
            "backed_up": entry["points"], "written": got["written"], "seconds": got["seconds"]}


def restore(src, cpus=None, tgt="*", stop_formulas=False, timeout=3600):
    """
    Restore a backup of ``salt-run energy.backup`` into the current plan, also when the stack moved
    to other hosts or was purged. The backup is checked first (manifest, sizes and SHA-256 of every
    archive): a foreign or corrupt one is refused before anything is written. Each database is
    restored into a temporary one and copied in with ``SELECT * INTO ... GROUP BY *``: into a
    database that already has data, it merges without duplicates.

    src
        The backup directory (holding manifest.json).
    cpus
        CPU names, comma-separated (default: all of the backup).
    stop_formulas
        A running SmartWatts of a restored CPU name makes the restore refuse. ``True``: put each in
        maintenance, stop it, restore, start it again and end the maintenance.

    CLI Example:

    .. code-block:: bash

        salt-run energy.restore src=/srv/backups/energy-backup-20261126T101500Z stop_formulas=True
    """
    import time  # pylint: disable=import-outside-toplevel

    started = time.monotonic()
    try:
        manifest = archive_core.check(src)
        facts = _facts(tgt)
        archive_core.planned(facts, "restore into")
        chosen = archive_core.cpu_list(cpus, sorted({e["cpu"] for e in manifest["entries"]}))
        plan = [(entry, archive_core.restore_target(facts, entry)) for entry in manifest["entries"] if entry["cpu"] in chosen]
        running = archive_core.formulas_to_stop(facts, chosen, stop_formulas)
    except archive_core.ArchiveError as exc:
        return _failed(str(exc))
    stopped = []
    results = []
    try:
        for name in running:
            minion = facts["boxes"][name]["minion"]
            _ask([minion], "energy_heal.maintenance", 60, action="on", what=name, reason="salt-run energy.restore", hours=6)
            _ask([minion], "docker.stop", 120, name=name)
            stopped.append((minion, name))
            _progress(f"restore: SmartWatts {name} on {minion} stopped")
        job = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for i, (entry, target) in enumerate(plan, start=1):
            _progress(f"restore {i}/{len(plan)}: {entry['file']} ({entry['size']} bytes) to {target[2]} on {target[0]}")
            results.append(_restore_one(src, entry, target, f"{job}_{i}", timeout))
            _progress(f"restore {i}/{len(plan)}: {target[2]} done, {results[-1]['written']} points written in "
                      f"{results[-1]['seconds']} s")
    except (archive_core.ArchiveError, trust.Untrusted) as exc:
        return _failed(str(exc) + (f" (restored before the failure: {[r['database'] for r in results]})"
                                   if results else ""))
    finally:
        for minion, name in stopped:
            _ask([minion], "docker.start", 120, name=name)
            _ask([minion], "energy_heal.maintenance", 60, action="off", what=name)
            _progress(f"restore: SmartWatts {name} on {minion} started again")
    return {"result": True, "restored": results, "seconds": round(time.monotonic() - started, 2)}


def export(dest, since=None, until=None, cpus=None, format="csv", per_cpu=True, tgt="*", timeout=3600):  # pylint: disable=redefined-builtin
    """
    Power per container over a time range, for analysis (pandas, R): ``format=csv`` (columns
    ``time,minion,cpu,container,scope,watts``; the sockets of one time summed) or ``format=line``
    (InfluxDB line protocol of the raw points). One file per CPU name (``per_cpu=True``, named
    after its database) or one file (``power.csv`` / ``power.lp``), in directory ``dest`` on the
    master. InfluxDB streams the answer in chunks and the minion writes it compressed as it comes;
    nothing holds the whole range in memory.

    CLI Example:

    .. code-block:: bash

        salt-run energy.export dest=/srv/exports since=2026-11-26T08:00:00Z until=2026-11-26T12:00:00Z
        salt-run energy.export dest=/srv/exports since=1d format=line per_cpu=False
    """
    import time  # pylint: disable=import-outside-toplevel

    started, now = time.monotonic(), time.time()
    job = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    try:
        _check_file_recv()
        if format not in archive_core.FORMATS:
            raise archive_core.ArchiveError(f"format: bad value {format!r}: one of {', '.join(archive_core.FORMATS)}")
        since_ns = archive_core.parse_time(since, now, "since")
        until_ns = archive_core.parse_time(until, now, "until")
        box = trust.outbox(dest)
    except archive_core.ArchiveError as exc:
        return _failed(str(exc))
    files = {}
    try:
        facts = _facts(tgt)
        archive_core.planned(facts, "export from")
        targets = archive_core.targets_of(facts, cpus)
        for i, (cpu, (minion, _container, database)) in enumerate(targets, start=1):
            name = trust.file_name(f"{database}.{'csv' if format == 'csv' else 'lp'}" if per_cpu
                                        else f"power.{'csv' if format == 'csv' else 'lp'}")
            _progress(f"export {i}/{len(targets)}: {database} ({cpu}) on {minion}")
            answers, errors = _ask([minion], "energy_archive.export_influxdb", timeout, database=database, cpu=cpu,
                                   since=since_ns, until=until_ns, fmt=format, upload=f"energy-export/{job}/{i}.gz",
                                   job=f"{job}_{i}")
            if minion not in answers:
                raise archive_core.ArchiveError(f"export of {database} on {minion} failed: "
                                                f"{errors.get(minion, 'no answer')}")
            got = trust.answer(minion, "energy_archive.export_influxdb", answers[minion], trust.EXPORT)
            header = ",".join(archive_core.CSV_COLUMNS) + "\n" if format == "csv" else ""
            trust.copy_rows(box, name, header, minion, _pushed(minion, f"energy-export/{job}/{i}.gz"), got["rows"])
            final = os.path.join(box.path, name)
            files[final] = files.get(final, 0) + got["rows"]
            _progress(f"export {i}/{len(targets)}: {got['rows']} rows of {database}")
    except FileExistsError as exc:
        return _failed(f"dest: {exc.filename} exists in {box.path}, and an export never overwrites a file. Fix: an "
                       "empty directory as dest=, or move the file away")
    except (archive_core.ArchiveError, trust.Untrusted, OSError) as exc:
        return _failed(str(exc))
    finally:
        box.close()
    return {"result": True, "files": files, "rows": sum(files.values()),
            "seconds": round(time.monotonic() - started, 2)}
