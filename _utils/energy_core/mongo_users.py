"""The MongoDB users of the stack, kept in a MongoDB that runs with authentication.

The image makes the root user (``energy-admin``) on its first start. With it, ``ensure`` keeps a
role and a user per report collection and purpose (``names.mongo_user``): ``energy-sensor-<cpu>``
may only insert into its CPU name's collection, ``energy-formula-<cpu>`` may only read and remove
from it. Users and roles of the stack that the plan no longer has (the shared ``energy-sensor`` and
``energy-formula`` of earlier releases, a CPU name gone) are dropped: their reports stay. Passwords
are checked by logging in as the user (MongoDB never gives them back) and set again when that
fails. Nothing here ever puts a password in what it returns.
"""

import time

from . import mongo_wire, names

SOURCE = "admin"
UNAUTHENTICATED = 18  # MongoDB's AuthenticationFailed


def privileges(user):
    return [{"resource": {"db": db, "collection": collection}, "actions": sorted(user["actions"])}
            for db, collection in sorted(user["collections"])]


def ours(name):
    """Whether a user or role named ``name`` is one the stack makes for sensors or formulas."""
    return any(name == names.MONGO_USERS[p] or name.startswith(names.MONGO_USERS[p] + "-")
               for p in ("sensor", "formula"))


def _drop_stale(conn, users, test, changes):
    """Drop the stack's users and roles that ``users`` no longer has (dropping a user keeps its data)."""
    wanted = {u["name"] for u in users} | {u["role"] for u in users}
    found = conn.command(SOURCE, {"usersInfo": 1})["users"]
    for name in sorted({u.get("user") for u in found if ours(str(u.get("user"))) and u.get("user") not in wanted}):
        changes.setdefault(name, []).append("user removed (the plan no longer has it)")
        if not test:
            conn.command(SOURCE, {"dropUser": name})
    found = conn.command(SOURCE, {"rolesInfo": 1})["roles"]
    for name in sorted({r.get("role") for r in found if ours(str(r.get("role"))) and r.get("role") not in wanted}):
        changes.setdefault(name, []).append("role removed (the plan no longer has it)")
        if not test:
            conn.command(SOURCE, {"dropRole": name})


def _normal(privs):
    return sorted((p["resource"].get("db"), p["resource"].get("collection"), tuple(sorted(p["actions"])))
                  for p in privs or [])


def _can_log_in(connect, user):
    try:
        with connect() as conn:
            conn.authenticate(user["name"], user["password"], SOURCE)
        return True
    except mongo_wire.CommandError as exc:
        if exc.code == UNAUTHENTICATED or "authentication failed" in str(exc).lower():
            return False
        raise


EXPIRE_INDEX = "energy_expire"


def _expire(conn, database, collection, seconds, test, changes):
    """A TTL index on the reports' ``timestamp``: MongoDB drops reports older than ``seconds``, so
    a formula that stopped reading cannot fill the volume."""
    found = conn.command(database, {"listIndexes": collection}, check=False)
    indexes = (found.get("cursor") or {}).get("firstBatch") or [] if found.get("ok") else []
    current = next((i for i in indexes if i.get("name") == EXPIRE_INDEX), None)
    where = f"{database}.{collection}"
    if current is None:
        changes.setdefault(where, []).append(f"reports expire after {seconds} s")
        if not test:
            conn.command(database, {"createIndexes": collection, "indexes": [
                {"key": {"timestamp": 1}, "name": EXPIRE_INDEX, "expireAfterSeconds": seconds}]})
    elif current.get("expireAfterSeconds") != seconds:
        changes.setdefault(where, []).append(f"reports expire after {seconds} s "
                                             f"(was {current.get('expireAfterSeconds')})")
        if not test:
            conn.command(database, {"collMod": collection, "index": {"name": EXPIRE_INDEX,
                                                                      "expireAfterSeconds": seconds}})


def _keep_user(conn, connect, user, test, changes):
    """One user and its role as ``user`` wants them (privileges, role, password)."""
    wanted = privileges(user)
    found = conn.command(SOURCE, {"rolesInfo": {"role": user["role"], "db": SOURCE},
                                  "showPrivileges": True})["roles"]
    if not found:
        changes.setdefault(user["role"], []).append("role created")
        if not test:
            conn.command(SOURCE, {"createRole": user["role"], "privileges": wanted, "roles": []})
    elif _normal(found[0].get("privileges")) != _normal(wanted):
        changes.setdefault(user["role"], []).append("role privileges updated")
        if not test:
            conn.command(SOURCE, {"updateRole": user["role"], "privileges": wanted, "roles": []})
    roles = [{"role": user["role"], "db": SOURCE}]
    found = conn.command(SOURCE, {"usersInfo": {"user": user["name"], "db": SOURCE}})["users"]
    if not found:
        changes.setdefault(user["name"], []).append("user created")
        if not test:
            conn.command(SOURCE, {"createUser": user["name"], "pwd": user["password"], "roles": roles,
                                  "mechanisms": ["SCRAM-SHA-256"]})
        return
    if [(r.get("role"), r.get("db")) for r in found[0].get("roles", [])] != [(user["role"], SOURCE)]:
        changes.setdefault(user["name"], []).append("roles set to " + user["role"])
        if not test:
            conn.command(SOURCE, {"updateUser": user["name"], "roles": roles})
    if not _can_log_in(connect, user):
        changes.setdefault(user["name"], []).append("password set from pillar")
        if not test:
            conn.command(SOURCE, {"updateUser": user["name"], "pwd": user["password"],
                                  "mechanisms": ["SCRAM-SHA-256"]})

def ensure(connect, admin, users, test=False, expire=None):
    """Keep ``users`` (``[{"name", "password", "role", "actions", "collections"}]``, ``collections``
    ``[[database, collection]]``) with their roles and drop the stack's others, logged in as
    ``admin`` (``{"name", "password"}``; None: no authentication), and the report expiry ``expire`` (``{"seconds", "collections": [[database, collection], ...]}``);
    ``connect()`` opens a ``mongo_wire.Connection``. Returns ``(result, changes, comment)``:
    ``result`` None in test mode when something would change. Raises mongo_wire.CommandError
    (code 18) when the admin password is refused, OSError when the server does not answer."""
    changes = {}
    with connect() as conn:
        if admin:
            conn.authenticate(admin["name"], admin["password"], SOURCE)
        for database, collection in (expire or {}).get("collections", []):
            _expire(conn, database, collection, int(expire["seconds"]), test, changes)
        for user in users:
            _keep_user(conn, connect, user, test, changes)
        if admin:  # after the new users exist: a failure above leaves the old ones working
            _drop_stale(conn, users, test, changes)
    what = ", ".join([u["name"] for u in users] + (["report expiry"] if expire else [])) or "nothing"
    if not changes:
        return True, {}, f"{what}: as the pillar wants"
    if test:
        return None, changes, f"{what}: would change"
    return True, changes, f"{what}: updated"


def keep(connect, admin, users, test, deadline, label, minion, sleep=time.sleep, expire=None):
    """``ensure``, tried again until ``deadline`` (monotonic) while the server is not ready: its
    port opens while the image still makes the root user, so the admin's first login may fail or
    the connection drop. Returns ``(result, changes, comment)``; ``result`` False with the cause
    and the fix when it never succeeds (``label`` names the server, ``minion`` where it was asked from)."""
    while True:
        try:
            result, changes, what = ensure(connect, admin, users, test, expire)
            return result, changes, f"{what}, on {label}"
        except mongo_wire.CommandError as exc:
            if exc.code != UNAUTHENTICATED:
                return False, {}, f"{label}: {exc} (from minion {minion})"
            if time.monotonic() >= deadline:
                return False, {}, (
                    f"{label} refuses {admin['name']} with energy:mongo:admin_password: its volume was first "
                    "started with another root password, or without authentication (the image makes the root "
                    "user on the first start only, on an empty volume). Fix: put the old password back in "
                    "energy:mongo:admin_password, or make the user in MongoDB (db.createUser / "
                    "db.changeUserPassword), or remove the volume (its unread reports are lost), then run the "
                    "orch again")
        except (OSError, ValueError, KeyError) as exc:
            if time.monotonic() >= deadline:
                return False, {}, f"{label}: {exc} (from minion {minion})"
        sleep(1)
