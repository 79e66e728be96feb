"""What the master takes from its minions, checked before it is used.

A minion's return is untrusted input on the master: a hostile or broken minion can answer
anything. The runners compute the plan themselves (``role_facts`` + ``plan.build`` from the
master's pillar and the mine in its cache) and take from a minion only values that this module
accepts: names that are the plan's, counts that are counts, digests that are digests. Whatever it
refuses raises ``Untrusted`` with the minion's name, which the runner logs.

Files the runners write go through ``Outbox``: one directory, resolved once and held open, new
files only (``O_EXCL | O_NOFOLLOW``, one path component each), so that no name can leave the
directory, follow a link, or overwrite a file this run did not create."""

import errno
import math
import os
import re

# imported here, not in the functions: energy_core.load() imports the core afresh for each Salt
# module, and a class imported later could be another load's (an ArchiveError no runner catches)
from . import archive, names, placement

MAX_COUNT = 10**15  # points, rows, bytes: more than any real database holds
MAX_SECONDS = 10**7
MAX_TEXT = 500
MAX_ROWS = 1000  # containers one minion may report
DOCKER_STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
_PUBLISHED = re.compile(r"[0-9A-Za-z.:\[\]-]{1,100}")
_REMOTE = re.compile(r"/[A-Za-z0-9_.,+@=/-]{0,4000}")


class Untrusted(ValueError):
    """A value from a minion that the master refuses; the message names the minion."""


# --------------------------------------------------------------------------- the master's own plan


def role_facts(conf, mine_get):
    """``{role: {minion: facts}}`` from the mine: one ``mine_get(compound target)`` for the roles
    that name their minions by id (``*``, ``L@a,b``, an id), one per other distinct target
    (``placement.mine_queries``). The same on a minion (its SLS) and on the master (the runners),
    so both compute the same plan from the same mine."""
    targets = {role: placement.role_target(conf, role) for role in names.ROLES}
    answers, result = {}, {}
    for role, (query, ids) in placement.mine_queries(targets).items():
        if query not in answers:
            answers[query] = {m: f for m, f in (mine_get(query) or {}).items() if isinstance(f, dict)}
        result[role] = {m: f for m, f in answers[query].items() if ids is None or m in ids}
    return {role: result.get(role, {}) for role in names.ROLES}


def containers_of(full_plan):
    """``{minion: [container names]}`` of a plan: what a reaction may touch (no secret in it)."""
    return {minion: sorted(c["name"] for c in host["containers"]) for minion, host in full_plan["hosts"].items()}


# --------------------------------------------------------------------------- values in a return


def _refuse(minion, fun, key, value, why):
    return Untrusted(f"minion {str(minion)[:80]!r}: {fun} returned {key} = {repr(value)[:80]}: {why}")


def count(minion, fun, key, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise _refuse(minion, fun, key, value, f"not a count (an integer from 0 to {MAX_COUNT})")
    return value


def seconds(minion, fun, key, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0 <= value <= MAX_SECONDS):
        raise _refuse(minion, fun, key, value, "not a duration in seconds")
    return value


def sha256(minion, fun, key, value):
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise _refuse(minion, fun, key, value, "not a SHA-256 (64 lowercase hex digits)")
    return value


def time_or_none(minion, fun, key, value):
    if value is not None and (not isinstance(value, str) or not _TIME.fullmatch(value)):
        raise _refuse(minion, fun, key, value, "not an RFC 3339 UTC time")
    return value


def points(minion, fun, key, value):
    if not isinstance(value, dict) or len(value) > 100:
        raise _refuse(minion, fun, key, value, "not a mapping of measurements to point counts")
    for measurement, found in value.items():
        if not isinstance(measurement, str) or not 0 < len(measurement) <= 200 or not measurement.isprintable():
            raise _refuse(minion, fun, key, measurement, "not a measurement name")
        count(minion, fun, f"{key}[{measurement}]", found)
    return dict(value)


def remote_path(minion, fun, key, value):
    """A path on the minion that the master will name back to it: absolute, plain characters, no '..'."""
    if not isinstance(value, str) or not _REMOTE.fullmatch(value) or ".." in value.split("/"):
        raise _refuse(minion, fun, key, value, "not a plain absolute path")
    return value


BACKUP = {"size": count, "sha256": sha256, "points": points, "first": time_or_none, "last": time_or_none,
          "seconds": seconds}
EXPORT = {"rows": count, "seconds": seconds}
RESTORE = {"written": count, "seconds": seconds}


def answer(minion, fun, value, shape):
    """``value`` (a function's return) reduced to the keys of ``shape``, each checked by its
    checker; raises Untrusted naming the minion for the first one that is wrong or missing."""
    if not isinstance(value, dict):
        raise _refuse(minion, fun, "its return", value, "not a mapping")
    return {key: check(minion, fun, key, value.get(key)) for key, check in shape.items()}


def _text(value, limit=MAX_TEXT):
    return value if isinstance(value, str) and len(value) <= limit and value.isprintable() else None


def _row(container):
    """One container of ``energy_inventory.live`` with only well-formed values, or None when its name is not one."""
    if not isinstance(container, dict):
        return None
    name = container.get("name")
    if not isinstance(name, str) or len(name) > names.MAX_NAME or not names.is_docker_name(name):
        return None
    volume = container.get("volume")
    volume_bytes = container.get("volume_bytes")
    health = container.get("health")
    published = container.get("published")
    return {
        "name": name,
        "component": container.get("component") if container.get("component") in names.COMPONENTS else None,
        "cpu": _text(container.get("cpu"), 300),
        "state": container.get("state") if container.get("state") in DOCKER_STATES else None,
        "health": ({k: v for k, v in health.items() if isinstance(k, str) and len(k) <= 40
                    and (isinstance(v, (int, float, bool)) or _text(v) is not None)}
                   if isinstance(health, dict) and len(health) <= 10 else None),
        "maintenance": _text(container.get("maintenance")),
        "published": published if isinstance(published, str) and _PUBLISHED.fullmatch(published) else None,
        "volume": volume if isinstance(volume, str) and len(volume) <= names.MAX_NAME
        and names.is_docker_name(volume) else None,
        "volume_bytes": volume_bytes if isinstance(volume_bytes, int) and not isinstance(volume_bytes, bool)
        and 0 <= volume_bytes <= MAX_COUNT else None,
    }


def live(minion, value):
    """An ``energy_inventory.live`` answer as the summary may use it, and the problems found (each names the
    minion): malformed rows are left out, malformed values become None; a non-mapping is an error
    string, as ``topology.combine`` expects."""
    if not isinstance(value, dict) or not isinstance(value.get("containers"), list):
        return (str(value)[:500] if isinstance(value, str) else "malformed energy_inventory.live answer"), [
            f"minion {minion!r}: energy_inventory.live returned no container list"]
    rows, problems = [], []
    for container in value["containers"][:MAX_ROWS]:
        row = _row(container)
        if row is None:
            problems.append(f"minion {minion!r}: energy_inventory.live returned a container without a Docker name: "
                            f"{repr(container)[:80]}")
            continue
        bad = [k for k in ("component", "state", "volume_bytes") if container.get(k) is not None and row[k] is None]
        if bad:
            problems.append(f"minion {minion!r}: energy_inventory.live returned malformed {', '.join(bad)} for {row['name']}")
        rows.append(row)
    if len(value["containers"]) > MAX_ROWS:
        problems.append(f"minion {minion!r}: energy_inventory.live returned {len(value['containers'])} containers, "
                        f"{MAX_ROWS} kept")
    return {"minion": minion, "containers": rows}, problems


# --------------------------------------------------------------------------- files on the master


def file_name(name, what="file name"):
    """``name`` when it is one plain path component (no '/', not '.' or '..', no control
    character, at most 255 bytes); raises Untrusted otherwise."""
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name
            or not name.isprintable() or len(name.encode()) > 255):
        raise Untrusted(f"{what} {repr(name)[:80]} is not a plain file name: refused")
    return name


class Outbox:
    """The files a runner writes in one directory during one run.

    The directory is resolved (``realpath``) and opened once; every file is created relative to
    it, as one checked path component, with ``O_CREAT | O_EXCL | O_NOFOLLOW``: an existing file
    or link of that name makes the write fail, so nothing is overwritten or followed. ``append``
    reopens only a file this Outbox created."""

    def __init__(self, directory, _fd=None):
        self.path = os.path.realpath(directory)
        self.fd = _fd if _fd is not None else os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        self.created = {}

    def subdir(self, name, mode=0o700):
        """A new directory ``name`` in this one (it must not exist), as an Outbox of its own."""
        file_name(name, "directory name")
        os.mkdir(name, mode, dir_fd=self.fd)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=self.fd)
        self.created[name] = None
        return Outbox(os.path.join(self.path, name), _fd=fd)

    def create(self, name, mode=0o600):
        """A new file ``name``, opened for binary writing; kept open until ``close``."""
        file_name(name)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)
        handle = os.fdopen(fd, "wb")
        self.created[name] = handle
        return handle

    def append(self, name):
        """The open file ``name`` this Outbox created in this run."""
        if self.created.get(name) is None:
            raise Untrusted(f"{name!r} was not created by this run in {self.path}: not written")
        return self.created[name]

    def adopt(self, source, name):
        """Move ``source`` (a file of the master's own, e.g. a cp.push upload) in as new file
        ``name``: a hard link when both are on one file system, else a copy; ``source`` is removed."""
        import shutil  # pylint: disable=import-outside-toplevel
        import stat  # pylint: disable=import-outside-toplevel

        file_name(name)
        if not stat.S_ISREG(os.lstat(source).st_mode):
            raise Untrusted(f"{source} is not a regular file: not taken")
        try:
            os.link(source, name, dst_dir_fd=self.fd, follow_symlinks=False)
            self.created[name] = None
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with open(os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as reader:
                shutil.copyfileobj(reader, self.create(name), 1 << 20)
            self.created[name].close()
            self.created[name] = None
        os.remove(source)
        return os.path.join(self.path, name)

    def remove_created(self):
        """Remove what this run created here (a half backup must not look whole)."""
        for name, handle in reversed(list(self.created.items())):
            if handle is not None:
                handle.close()
            try:
                os.unlink(name, dir_fd=self.fd)
            except IsADirectoryError:
                os.rmdir(name, dir_fd=self.fd)
            except OSError:
                pass
        self.created = {}

    def close(self):
        for handle in self.created.values():
            if handle is not None:
                handle.close()
        os.close(self.fd)


# --------------------------------------------------------------------------- what the archive runners keep


def asked(found):
    """LocalClient ``full_return`` answers as ``({minion: return}, {minion: error text})``."""
    answers, errors = {}, {}
    for minion, ret in (found or {}).items():
        if not isinstance(ret, dict):
            continue
        if ret.get("retcode", 0) != 0 or (isinstance(ret.get("ret"), str) and "ERROR" in ret["ret"][:40]):
            errors[minion] = str(ret.get("ret"))[-2000:]
        else:
            answers[minion] = ret.get("ret")
    return answers, errors


def outbox(dest, default=None):
    """``dest`` (or ``default``, made when missing) as an Outbox; ArchiveError naming ``dest``."""
    ArchiveError = archive.ArchiveError  # pylint: disable=invalid-name
    if dest in (None, "") and default:
        os.makedirs(default, mode=0o700, exist_ok=True)
        dest = default
    elif not dest or not os.path.isdir(dest):
        raise ArchiveError(f"dest: bad value {dest!r}: no such directory on the master. Fix: create it (mkdir -p), "
                           "then give it as dest=" + (f", or leave dest out ({default})" if default else ""))
    try:
        return Outbox(dest)
    except OSError as exc:
        raise ArchiveError(f"dest: bad value {dest!r}: cannot write there ({exc.strerror}). Fix: a directory the "
                           "salt-master user can write") from exc


def keep(directory, minion, source, name, got):
    """Move the archive ``minion`` pushed (``source``) into ``directory`` (an Outbox) as ``name``,
    once there is room for it: the size and SHA-256 the minion gave (``got``) must be what
    arrived. Returns its size."""
    import shutil  # pylint: disable=import-outside-toplevel

    size = os.lstat(source).st_size
    if size != got["size"]:
        os.remove(source)
        raise Untrusted(f"minion {minion!r}: energy_archive.backup_influxdb said {got['size']} bytes, {size} arrived")
    free = shutil.disk_usage(directory.path).free
    if free < size:
        os.remove(source)
        raise archive.ArchiveError(f"dest: no space for {name}: it has {size} bytes, {directory.path} has {free} "
                                   "free. Fix: a destination with more room (dest=), or a shorter range "
                                   "(since=/until=)")
    try:
        final = directory.adopt(source, name)
    except FileExistsError as exc:
        raise archive.ArchiveError(f"dest: {name} exists in {directory.path}, and nothing is overwritten. Fix: an "
                                   "empty destination (dest=)") from exc
    except OSError as exc:
        raise archive.ArchiveError(f"dest: cannot store {name} in {directory.path}: {exc}. Fix: a destination with "
                                   "more room (dest=)") from exc
    if archive.sha256_of(final) != got["sha256"]:
        raise archive.ArchiveError(f"{name} arrived damaged on the master (SHA-256 differs): try again")
    return size


MAX_ROW_BYTES = 4096  # one exported row: a time, a minion, a CPU name, a container, a scope and watts


def copy_rows(box, name, header, minion, pushed, rows):
    """Append the rows ``minion`` pushed (gzip, removed after) to file ``name`` of ``box``: a new
    file the first time (starting with ``header``), the same open file after. Its row count
    (``rows``) may not exceed the lines that arrived, nor the lines (and bytes) the rows it claims."""
    import gzip  # pylint: disable=import-outside-toplevel

    fresh = name not in box.created
    out = box.create(name) if fresh else box.append(name)
    if fresh and header:
        out.write(header.encode())
    lines = written = 0
    try:
        with gzip.open(pushed, "rb") as part:
            for block in iter(lambda: part.read(1 << 20), b""):
                lines += block.count(b"\n")
                written += len(block)
                # a gzip of repeated bytes inflates a thousandfold: what arrives is bounded by the rows
                # the minion claims, checked before each block is written
                if lines > rows or written > rows * MAX_ROW_BYTES:
                    raise Untrusted(f"minion {minion!r}: energy_archive.export_influxdb said {rows} rows, more arrived "
                                    f"({lines} lines, {written} bytes so far): the export stops there")
                out.write(block)
    finally:
        os.remove(pushed)
    if rows > lines:
        raise Untrusted(f"minion {minion!r}: energy_archive.export_influxdb said {rows} rows, {lines} lines arrived")
