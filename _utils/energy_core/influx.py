"""InfluxDB 1.x over its HTTP API: one InfluxQL query, and a database kept with the retention the
pillar asks for (what ``energy.influxdb_database`` does, with the query function handed in)."""

import json
import urllib.error
import urllib.parse
import urllib.request

from .checks import duration_seconds


def query(url, statement, method="GET", timeout=10, **params):
    """One InfluxQL statement on InfluxDB 1.x; the first statement's result. Raises RuntimeError
    when InfluxDB answers with an error, OSError when it does not answer."""
    data = urllib.parse.urlencode({"q": statement, **params}).encode()
    if method == "GET":
        request = urllib.request.Request(f"{url}/query?{data.decode()}")
    else:
        request = urllib.request.Request(f"{url}/query", data=data, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        result = json.load(resp)["results"][0]
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


PROBE_MEASUREMENT = "energy_health"  # one point per failed freshness check; the dashboards never read it


def refuses_points(url, database, timeout=10):
    """None when InfluxDB 1.x at ``url`` stores a point in ``database``, else what it answered (a
    full volume: ``no space left on device``). Only asked when a sensor's points stopped coming or count no container."""
    import time  # pylint: disable=import-outside-toplevel

    body = f"{PROBE_MEASUREMENT},check=write ok=1i {int(time.time())}".encode()
    params = urllib.parse.urlencode({"db": database, "precision": "s"})
    request = urllib.request.Request(f"{url}/write?{params}", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return None if resp.status == 204 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode(errors="replace").strip()
        return f"HTTP {exc.code}: {detail}"


def _default_policy(result):
    series = (result.get("series") or [{}])[0]
    columns = series.get("columns", [])
    return next((dict(zip(columns, row)) for row in series.get("values", []) if dict(zip(columns, row)).get("default")),
                None)


def ensure_database(run, name, retention, test=False):
    """Make database ``name`` exist with a default retention policy of ``retention``, through
    ``run(statement, method)``. Returns ``(result, changes, what)``: result None in test mode when
    something would change, ``what`` the sentence for the state's comment (without the server)."""
    wanted = duration_seconds(retention)
    databases = run("SHOW DATABASES", "GET")
    if name not in [row[0] for s in databases.get("series", []) for row in s.get("values", [])]:
        if test:
            return None, {}, f"database {name} would be created with retention {retention}"
        run(f'CREATE DATABASE "{name}" WITH DURATION {retention} NAME "energy"', "POST")
        return True, {"database": {"old": None, "new": name}, "retention": {"old": None, "new": retention}}, \
            f"database {name} created with retention {retention}"
    default = _default_policy(run(f'SHOW RETENTION POLICIES ON "{name}"', "GET"))
    if default and duration_seconds(default["duration"]) == wanted:
        return True, {}, f"database {name} is as wanted (retention {retention})"
    if test:
        return None, {}, f"retention of {name} would change to {retention}"
    if default is None:
        run(f'CREATE RETENTION POLICY "energy" ON "{name}" DURATION {retention} REPLICATION 1 DEFAULT', "POST")
    else:
        run(f'ALTER RETENTION POLICY "{default["name"]}" ON "{name}" DURATION {retention} DEFAULT', "POST")
    return True, {"retention": {"old": default["duration"] if default else None, "new": retention}}, \
        f"retention of {name} changed to {retention}"


def stream(url, statement, timeout=600, chunk_size=10000, **params):
    """The series of one InfluxQL statement on InfluxDB 1.x, read chunk by chunk (``chunked=true``):
    a large answer is never held whole. Yields the series dicts as they come (a series may come
    in several parts)."""
    from .archive import series_of  # pylint: disable=import-outside-toplevel

    data = urllib.parse.urlencode({"q": statement, "chunked": "true", "chunk_size": chunk_size, **params})
    with urllib.request.urlopen(f"{url}/query?{data}", timeout=timeout) as resp:
        for line in resp:
            if line.strip():
                yield from series_of(json.loads(line))


def counts(url, database, where=""):
    """Points per measurement of ``database`` (the largest field count of each), within ``where``."""
    result = query(url, f"SELECT COUNT(*) FROM /.*/{where}", db=database)
    found = {}
    for series in result.get("series") or []:
        values = (series.get("values") or [[]])[0]
        found[series["name"]] = max([v for v in values[1:] if isinstance(v, int)] or [0])
    return found


def default_policy(url, database):
    """The name of ``database``'s default retention policy (None when it has none)."""
    found = _default_policy(query(url, f'SHOW RETENTION POLICIES ON "{database}"'))
    return found["name"] if found else None
