"""What a backup, a restore and an export do with one InfluxDB 1.x of the plan, decided here and
run by the ``energy_archive`` execution module: the ``influxd`` command lines, the InfluxQL
statements, the room a backup needs, and which archive members may be unpacked. Pure: no Docker,
no Salt, no network."""

import os

from . import archive, sizing
from .archive import MEASUREMENT, ArchiveError

MARGIN_BYTES = 16 * 2**20  # room a backup leaves beside its own size (InfluxDB's WAL segments are 10 MB)
VERSION_ERROR = ("energy:influxdb:version: bad value 2: energy.backup, energy.restore and energy.export read InfluxDB "
                 "1.x (influxd backup -portable, InfluxQL). Fix: with InfluxDB 2 use the influx CLI in the container "
                 "(influx backup / influx restore, with the admin token)")


def holding(node_part, database):
    """The InfluxDB container of ``node_part`` (a minion's part of the plan) that keeps ``database``, or None."""
    return next((c for c in node_part["containers"]
                 if c["component"] == "influxdb" and database in [d["name"] for d in c["databases"]]), None)


def data_dir(info):
    """Where the InfluxDB container (``info``: Docker's inspection) keeps /var/lib/influxdb on its host."""
    mount = next((m for m in info.get("Mounts") or [] if m.get("Destination") == "/var/lib/influxdb"), None)
    if not mount or not mount.get("Source"):
        raise ArchiveError(f"InfluxDB container {info.get('Name')} has no volume on /var/lib/influxdb")
    return mount["Source"]


def bind_address(info):
    """``influxd backup/restore -host``: the RPC address the server listens on (INFLUXDB_BIND_ADDRESS
    of the container, else InfluxDB's default 127.0.0.1:8088, inside the container)."""
    for item in (info.get("Config") or {}).get("Env") or []:
        if item.startswith("INFLUXDB_BIND_ADDRESS="):
            address = item.split("=", 1)[1]
            return ("127.0.0.1" + address) if address.startswith(":") else address
    return "127.0.0.1:8088"


def space_problem(database, need, places):
    """Why a backup of ``database`` (about ``need`` bytes) does not fit, or None. ``places``:
    ``[(where, free bytes)]``, each of which must hold it with ``MARGIN_BYTES`` to spare."""
    for place, free in places:
        if free < need + MARGIN_BYTES:
            return (f"no space for the backup of {database}: it needs about {sizing.human(need)} on {place}, which "
                    f"has {sizing.human(free)} free. Fix: free space there, or back up a shorter range "
                    "(since=/until=)")
    return None


def backup_argv(bind, database, since, until, inside):
    """``influxd backup -portable`` of ``database`` over ``[since, until)`` (ns) into ``inside``
    (a directory of the container's /var/lib/influxdb)."""
    argv = ["influxd", "backup", "-portable", "-host", bind, "-database", database]
    if since is not None:
        argv += ["-start", archive.rfc3339(since)]
    if until is not None:
        argv += ["-end", archive.rfc3339(until)]
    return argv + [f"/var/lib/influxdb/{inside}"]


def edge_statement(func, where):
    """The first (``FIRST``) or last (``LAST``) point of the range: asked apart, as asked together
    both would answer the range's start."""
    return f'SELECT {func}("power") FROM "{MEASUREMENT}"{where}'


def first_value(result):
    """The first value of an InfluxQL answer (None when it has none)."""
    return ((result.get("series") or [{}])[0].get("values") or [[None]])[0][0]


def failed(what, code, output):
    """The error of an ``influxd`` run (``what``: "backup of <database> in <container>") that exited ``code``."""
    return ArchiveError(f"influxd {what} failed (exit {code}): {output.strip()[-1500:]}")


def unsafe_member(members, dest):
    """The name of the first archive member (``(name, is a plain file or directory)``) that would
    land outside ``dest`` or is not a plain file or directory, or None: nothing else is unpacked."""
    root = os.path.realpath(dest) + os.sep
    for name, plain in members:
        if not os.path.realpath(os.path.join(dest, name)).startswith(root) or not plain:
            return name
    return None


def temporary_database(database, stamp):
    """The database ``influxd restore`` writes into (it refuses to restore over an existing one)."""
    return f"{database}_restore_{stamp}"[:200]


def restore_argv(bind, source, temporary, inside):
    """``influxd restore -portable`` of database ``source`` of the backup unpacked in ``inside`` into ``temporary``."""
    return ["influxd", "restore", "-portable", "-host", bind, "-db", source, "-newdb", temporary,
            f"/var/lib/influxdb/{inside}/backup"]


def policies_statement(temporary):
    return f'SHOW RETENTION POLICIES ON "{temporary}"'


def copy_statement(database, into, temporary, policy):
    """Every point of ``temporary``'s retention policy ``policy`` into ``database``'s policy
    ``into``: a point already there (same series, same time) is overwritten, not doubled."""
    return f'SELECT * INTO "{database}"."{into}".:MEASUREMENT FROM "{temporary}"."{policy}"./.*/ GROUP BY *'


def written(result):
    """Points an ``INTO`` query says it wrote."""
    return sum(int(values[-1] or 0) for series in result.get("series") or [] for values in series.get("values") or [])


def short_restore(database, minion, count, expected):
    """The error when a restore wrote fewer points than the backup's manifest counts, or None."""
    if count >= sum(expected.values()):
        return None
    return ArchiveError(f"restore of {database} on {minion}: {count} points written, the backup holds "
                        f"{sum(expected.values())}. Fix: run the restore again (a point already there is "
                        "overwritten, not doubled)")


def export_statement(fmt, where):
    """What an export asks InfluxDB for: power per sensor, target and scope (csv), or every raw point."""
    if fmt == "csv":
        return f'SELECT "power" FROM "{MEASUREMENT}"{where} GROUP BY "sensor","target","scope"'
    return f'SELECT * FROM "{MEASUREMENT}"{where} GROUP BY *'


def field_types(result):
    """``{field: type}`` from ``SHOW FIELD KEYS`` (what line protocol needs to write each value)."""
    return {r[0]: r[1] for s in result.get("series") or [] for r in s.get("values") or []}


FIELD_KEYS = f'SHOW FIELD KEYS FROM "{MEASUREMENT}"'
