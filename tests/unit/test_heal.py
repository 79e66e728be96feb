"""The health probes and what their answers mean (the verdict itself: test_verdict.py)."""

import os
import socket
import struct
import threading

import pytest

from energy_core import health, schema


# the OP_MSG reply of the MongoDB stand-in (energy-test/mongo) to {ping: 1}: {ok: 1.0}
PONG = b"\x00\x00\x00\x00\x00\x11\x00\x00\x00\x01ok\x00" + struct.pack("<d", 1.0) + b"\x00"


@pytest.fixture
def mongo_port():
    """A port answering one OP_MSG with PONG, as a MongoDB answers {ping: 1}."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer():
        conn, _ = server.accept()
        with conn:
            length, request_id, _, _ = struct.unpack("<iiii", conn.recv(16))
            conn.recv(length - 16)
            conn.sendall(struct.pack("<iiii", 16 + len(PONG), 2, request_id, 2013) + PONG)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()


def test_mongo_that_does_not_answer_a_ping(closed_port, open_port, mongo_port):
    reason = health.mongo_ping(f"127.0.0.1:{closed_port}")
    assert reason.startswith(f"127.0.0.1:{closed_port} does not answer a MongoDB ping")
    # accepting connections is not answering: a hung mongod is unhealthy
    reason = health.mongo_ping(f"127.0.0.1:{open_port}", timeout=1)
    assert reason.startswith(f"127.0.0.1:{open_port} does not answer a MongoDB ping")
    assert health.mongo_ping(f"127.0.0.1:{mongo_port}") is None


def test_http_service_that_does_not_answer(closed_port):
    ok, detail = health.http_ok(f"http://127.0.0.1:{closed_port}/ping")
    assert not ok and detail.startswith(f"GET http://127.0.0.1:{closed_port}/ping")


def test_durations():
    assert schema.duration_seconds("30d") == 30 * 86400
    assert schema.duration_seconds("720h0m0s") == 30 * 86400
    assert schema.duration_seconds("INF") == 0
    with pytest.raises(ValueError):
        schema.duration_seconds("30 days")


GROUPS = {"rapl": ("system", ["RAPL_ENERGY_PKG"]), "msr": ("system", ["TSC", "APERF", "MPERF"]),
          "core": ("container", ["LLC_MISSES", "INSTRUCTIONS_RETIRED"])}


@pytest.mark.parametrize("logs, expected", [
    ("config: json: Failed to add event 'RAPL_ENERGY_PKG' to group 'rapl'\n",
     {"event": "RAPL_ENERGY_PKG", "group": "rapl", "kind": "system"}),
    # 1.3.0 names no group: the one of the config that holds the event
    ("config: event 'LLC_MISSES' is invalid or unsupported by this machine\n",
     {"event": "LLC_MISSES", "group": "core", "kind": "container"}),
    ("config: event 'RAPL_ENERGY_PKG' is invalid or unsupported by this machine\n",
     {"event": "RAPL_ENERGY_PKG", "group": "rapl", "kind": "system"}),
    ("config: event 'NOPE' is invalid or unsupported by this machine\n",
     {"event": "NOPE", "group": "unknown (not in the sensor's config)", "kind": None}),
    ("pmu: found skylake 'Intel Skylake'\nsensor: started\n", None),
    ("", None),
])
def test_the_sensors_refusal_is_read_from_its_output(logs, expected):
    assert health.sensor_refusal(logs, GROUPS) == expected


def influx_server(databases, policies):
    """A stand-in for InfluxDB's /query, recording the statements it gets."""
    seen = []

    def run(statement, method):
        seen.append((method, statement))
        if statement == "SHOW DATABASES":
            return {"series": [{"values": [[d] for d in databases]}]}
        if statement.startswith("SHOW RETENTION POLICIES"):
            return {"series": [{"columns": ["name", "duration", "default"], "values": policies}]}
        return {}
    return run, seen


def test_an_influxdb_database_is_created_with_its_retention_then_left_alone():
    from energy_core import influx

    run, seen = influx_server(["_internal"], [])
    assert influx.ensure_database(run, "power_x", "7d", test=True)[0] is None
    assert all(method == "GET" for method, _ in seen)  # test mode writes nothing
    result, changes, what = influx.ensure_database(run, "power_x", "7d")
    assert result is True and changes["database"]["new"] == "power_x" and "created" in what
    assert seen[-1] == ("POST", 'CREATE DATABASE "power_x" WITH DURATION 7d NAME "energy"')
    run, seen = influx_server(["power_x"], [["energy", "168h0m0s", True]])
    assert influx.ensure_database(run, "power_x", "7d") == (True, {}, "database power_x is as wanted (retention 7d)")
    result, changes, _ = influx.ensure_database(run, "power_x", "30d")
    assert changes == {"retention": {"old": "168h0m0s", "new": "30d"}}
    assert seen[-1] == ("POST", 'ALTER RETENTION POLICY "energy" ON "power_x" DURATION 30d DEFAULT')


def test_the_plan_is_computed_once_per_job_and_again_for_the_next():
    from energy_core import jobs

    calls, context = [], {}

    def compute():
        calls.append(1)
        return len(calls)

    assert jobs.once_per_job(context, "k", "2026", {"a": 1}, compute) == 1
    assert jobs.once_per_job(context, "k", "2026", {"a": 1}, compute) == 1  # same job, same inputs
    assert jobs.once_per_job(context, "k", "2026", {"a": 2}, compute) == 2  # other inputs
    assert jobs.once_per_job(context, "k", "2027", {"a": 2}, compute) == 3  # next job
    assert jobs.once_per_job(context, "k", None, {"a": 2}, compute) == 4  # no job id: no keeping


def test_the_job_is_the_one_proc_file_of_this_process_and_under_threads_of_this_thread():
    from energy_core import jobs

    entries = [{"pid": 7, "jid": 20260101}, {"pid": 8, "jid": "2027"}, "half written", {"pid": 7}]
    assert jobs.job_of(entries, 7) == "20260101"
    assert jobs.job_of(entries, 9) is None  # not in a job
    assert jobs.job_of(entries + [{"pid": 7, "jid": "2028"}], 7) is None  # two: cannot tell
    threaded = [{"pid": 7, "jid": "2028"}, {"pid": 7, "jid": "2029"}]  # every job has the minion's pid
    assert jobs.job_of(threaded, 7, thread_name="ProcessPayload(jid=2029)") == "2029"


def test_the_mine_facts_take_overrides_of_fact_keys_only_and_an_address_not_on_loopback():
    from energy_core import names

    facts = names.published_facts({"cpu_name": "Xeon", "cpu_count": 4}, {"docker_engine": "20.10"},
                                  {"cpu_count": 8, "secret": "x"}, ["127.0.0.1", "10.0.0.5", "10.0.0.6"])
    assert facts == {"cpu_name": "Xeon", "cpu_count": 8, "docker_engine": "20.10", "address": "10.0.0.5"}
    assert names.published_facts(None, {}, {"address": "192.0.2.1"}, ["10.0.0.5"])["address"] == "192.0.2.1"
    assert names.published_facts({}, {}, None, ["127.0.1.1"])["address"] == "127.0.0.1"


@pytest.mark.parametrize("document", [
    struct.pack("<i", 15) + b"\x03a\x00" + struct.pack("<i", -2) + b"\x00" * 6,   # a sub-document going backwards
    struct.pack("<i", 15) + b"\x02a\x00" + struct.pack("<i", -9) + b"\x00" * 6,   # a string of negative size
    struct.pack("<i", 15) + b"\x05a\x00" + struct.pack("<i", -20) + b"\x00" * 6,  # a binary of negative size
])
def test_a_crafted_mongodb_reply_is_refused_not_looped_on(document):
    from energy_core import mongo_wire

    with pytest.raises(ValueError):
        mongo_wire.decode(document)


def test_the_sensor_name_is_quoted_in_the_freshness_query(monkeypatch):
    seen = []
    monkeypatch.setattr(health.influx, "query", lambda url, q, **kw: seen.append(q) or {})
    sensor = "o'brien" + "\\"  # a quote and a backslash, both allowed in minion ids
    assert health.newest_point({"url": "http://x", "database": "d", "sensor": sensor}) is None
    assert seen == [r"SELECT last(power) FROM power_consumption WHERE sensor = 'o\'brien\\' AND target = 'rapl'"]


SPACE = {"volume": "energy-ctl-influxdb-x", "min_free_mb": 16}


def test_a_full_data_volume_is_reported_and_left_as_it_is():
    reason = health.full_reason(SPACE, 3 * 2**20)
    assert reason.startswith(health.FULL) and reason.startswith(health.LEFT_AS_IS)
    assert "energy-ctl-influxdb-x is full (3.0 MB free, under 16 MB)" in reason and "Fix:" in reason


@pytest.mark.parametrize("free", [2**30, None, 16 * 2**20])
def test_room_left_or_no_way_to_tell_is_not_full(free):
    assert health.full_reason(SPACE, free) is None


def test_the_sensor_name_is_quoted_in_the_targets_query(monkeypatch):
    seen = []
    monkeypatch.setattr(health.influx, "query", lambda url, q, **kw: seen.append(q) or {
        "series": [{"tags": {"target": "rapl"}}, {"tags": {"target": "web"}}]})
    probe = {"url": "http://x", "database": "d", "sensor": "o'brien", "max_age": 60}
    assert health.recent_targets(probe) == ["rapl", "web"]
    assert seen == [r"SELECT last(power) FROM power_consumption WHERE sensor = 'o\'brien' AND time > now() - 60s "
                    "GROUP BY target"]


# --------------------------------------------------------------------------- freshness under clock skew
MAX_AGE = 60


def checks(newest_at, skew, period=10, duration=600):
    """Run the freshness check every ``period`` s of the checker's clock for ``duration`` s; the
    sensor's clock is ``skew`` s off the checker's, and its newest point is ``newest_at(t)`` (true
    time) or None. Returns [(true time, reason)]."""
    seen, found = {}, []
    for t in range(0, duration, period):
        newest = newest_at(t)
        reason, keep = health.freshness(None if newest is None else newest + skew, 1_800_000_000 + t, MAX_AGE,
                                        seen.get("s"))
        seen["s"] = keep
        found.append((t, reason))
    return found


def writing(t):  # a sensor that writes every second, its newest point a few seconds old
    return 1_800_000_000 + t - 3


@pytest.mark.parametrize("skew", [-90, -45, 0, 45, 90, -250])
def test_a_writing_sensor_is_never_stale_whatever_its_clock(skew):
    """90 s of skew either way (and more): never judged stale, so never recreated in a loop."""
    assert [reason for _, reason in checks(writing, skew) if reason] == []


@pytest.mark.parametrize("skew", [-90, 0, 90])
def test_a_sensor_that_stops_is_stale_after_max_age_of_the_checkers_clock(skew):
    stop = 200  # it writes until then, then its newest point stays
    found = checks(lambda t: writing(min(t, stop)), skew)
    stale = [t for t, reason in found if reason]
    assert stale and all(reason for t, reason in found if t >= stale[0])  # once stale, it stays so
    # judged by how long its newest point has not moved on this host: max_age, plus at most one period
    assert stop + MAX_AGE <= stale[0] <= stop + MAX_AGE + 10 + 1
    assert "has not changed for" in dict(found)[stale[0]]


def test_a_first_look_at_a_long_dead_sensor_is_stale_at_once_beyond_the_tolerance():
    now = 1_800_000_000
    reason, keep = health.freshness(now - MAX_AGE - health.SKEW_TOLERANCE - 5, now, MAX_AGE, None)
    assert reason and "+300 s for clocks that differ" in reason
    # kept so that the next check finds it stale too (not fresh for max_age, then stale again)
    assert health.freshness(keep["newest"], now + 10, MAX_AGE, keep)[0].startswith(
        "the sensor's newest measured power point has not changed for 71 s")
    # within the tolerance, a first look waits for the next check to judge by movement
    assert health.freshness(now - 150, now, MAX_AGE, None)[0] is None
    assert health.freshness(None, now, MAX_AGE, None)[0].endswith("is never (no point at all)")


def test_what_each_check_saw_is_kept_privately_across_checks(tmp_path):
    path = str(tmp_path / "energy" / "fresh.json")
    seen = health.Seen(path)
    seen["http://i:8086|d|n1"] = {"newest": 1_010.0, "at": 5_000_010.0}
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert health.Seen(path)["http://i:8086|d|n1"] == {"newest": 1_010.0, "at": 5_000_010.0}
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("{cut")
    assert health.Seen(path) == {}  # unreadable: started afresh (one check later to judge)


@pytest.mark.parametrize("image, repository, tag", [
    ("mongo:7.0.8", "mongo", "7.0.8"),
    ("registry.local:5000/energy/influxdb:1.8", "registry.local:5000/energy/influxdb", "1.8"),
    ("registry.local:5000/grafana", "registry.local:5000/grafana", "latest"),
])
def test_a_missing_image_is_named_with_its_tag_and_the_fix(image, repository, tag):
    said = health.image_missing("mongo", "energy-a-mongo-x", "the container is exited", image, "node-a")
    assert f"its image {repository} (tag {tag}) is not on node-a" in said
    assert f"docker pull {image}" in said and "docker load" in said and "state.apply energy.mongo" in said
    assert "left as they are" in said


@pytest.mark.parametrize("volume, fix", [
    ("energy-ctl-mongo-intel_xeon", "let its formula consume the sensor reports"),
    ("energy-ctl-influxdb-intel_xeon", "energy:influxdb:retention"),
    ("energy-ctl-grafana", "Grafana keeps its dashboards"),
])
def test_a_full_volume_names_the_fix_of_what_it_holds(volume, fix):
    reason = health.full_reason({"volume": volume, "min_free_mb": 16}, 2**20)
    assert reason.startswith(health.FULL) and f"its volume {volume} is full" in reason and fix in reason


def test_a_container_watched_after_a_start_is_watched_until_it_has_run_that_long_and_as_one_run():
    assert health.watch_left(5, None) == 5.0
    assert health.watch_left(5, 2) == 3.0 and health.watch_left(5, 3600) == 0.0
    run = {"State": {"Status": "running", "StartedAt": "t0"}, "RestartCount": 1}
    assert health.same_run(run, 1, "t0")
    assert not health.same_run(dict(run, RestartCount=2), 1, "t0")  # restarted meanwhile
    assert not health.same_run({"State": {"Status": "running", "StartedAt": "t1"}, "RestartCount": 1}, 1, "t0")
    assert not health.same_run({}, 0, None)  # gone


def test_what_stays_up_says_of_a_container_that_did_not_and_of_a_stopped_sensor():
    from energy_core import sensor_faults

    said = health.not_up_comment("formula", "energy-a-formula-x", "a", None, 2, "x" * 2000 + "\n")
    assert said.startswith("formula container energy-a-formula-x on a does not stay up (gone, 2 restart(s)); ")
    assert said.endswith("x" * 1500) and "x" * 1501 not in said
    said = sensor_faults.stopped_comment("a", {"event": "BOGUS", "group": "core"})
    assert "the hwpc-sensor on a refused its config" in said and "'BOGUS' (group core)" in said
    assert "for this CPU name" in said and "salt a grains.get energy:pmu_events" in said
