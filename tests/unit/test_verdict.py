"""The one verdict heal acts on (energy_core.verdict): what is wrong with a container, and what to do.

Each case gives the facts the Salt layer would gather; the verdict must ask only for the facts its
decision depends on, each once, and end with the status, the action and the reason."""

import datetime

import pytest

from energy_core import health, sensor_faults, verdict

NOW = 1_800_000_000.0


def inspected(status="running", age=3600.0, restarts=0):
    started = datetime.datetime.fromtimestamp(NOW - age, datetime.timezone.utc)
    return {"State": {"Status": status, "StartedAt": started.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")},
            "RestartCount": restarts}


SPACE = {"volume": "energy-ctl-influxdb-x", "min_free_mb": 16}
FRESH = {"url": "http://i:8086", "database": "d", "sensor": "node-a", "max_age": 60}
KEY = verdict.fresh_key(FRESH)
BACKLOG = {"uri": "mongodb://energy-formula-x:pw@10.0.0.5:27017", "database": "d", "collection": "c", "max": 100}
PROBES = {"mongo": {"mongo": "10.0.0.5:27017", "space": SPACE}, "influxdb": {"http": "http://i:8086/ping", "space": SPACE},
          "formula": {"backlog": BACKLOG}, "sensor": {"fresh": FRESH}, "grafana": {"http": "http://g:3000/api/health"}}
CONFIG = {"cgroup_basepath": "/sys/fs/cgroup/perf_event", "system": {"rapl": {"events": ["RAPL_ENERGY_PKG"]},
                                                                      "msr": {"events": ["TSC", "APERF", "MPERF"]}},
          "container": {"core": {"events": ["LLC_MISSES"]}}}
MOUNTED = "cgroup /sys/fs/cgroup/perf_event cgroup rw,nosuid,perf_event 0 0\n"


def host(logs="", basepath_exists=True, mounts=MOUNTED, version=1, containers=3, config=CONFIG):
    return sensor_faults.host_facts(config, logs, version, mounts, basepath_exists, containers)


def spec(component):
    return {"name": f"energy-node-a-{component}", "component": component, "run": {"image": "img:1"},
            "health": PROBES[component]}


BASE = {"held": "", "info": inspected(), "image": True}
STALE = {"newest": NOW - 1000, "seen": {"newest": NOW - 1000, "at": NOW - 500}, "refuses": None}
MOVING = {"newest": NOW - 2, "seen": {"newest": NOW - 12, "at": NOW - 10}}

CASES = [
    # component, facts, grace, started_here -> status, action, words of the reason, facts asked
    ("formula", {"held": "maintenance on formula since ..."}, 60, False, "held", "none", "maintenance", ["held"]),
    ("sensor", {}, 60, True, "watched", "none", "energy_heal.stays_up watches it", ["held"]),
    ("mongo", {"info": None}, 60, True, "unhealthy", "recreate", "the container is missing", ["held", "info", "image"]),
    ("formula", {"info": None, "image": False}, 60, False, "unhealthy", "leave", "(tag 1) is not on node-a",
     ["held", "info", "image"]),
    ("grafana", {"info": inspected("exited")}, 60, False, "unhealthy", "recreate", "the container is exited",
     ["held", "info", "image"]),
    ("influxdb", {"free": 2**20}, 60, False, "unhealthy", "leave", "volume full: its volume", ["held", "info", "free"]),
    ("influxdb", {"free": 2**20, "info": inspected("exited")}, 60, False, "unhealthy", "leave", "is full",
     ["held", "info", "free"]),
    ("influxdb", {"free": 2**30, "http": [False, "GET http://i:8086/ping: refused"]}, 60, False, "unhealthy",
     "recreate", "refused (the service does not answer)", ["held", "info", "free", "http", "image"]),
    ("influxdb", {"free": None, "http": [True, "HTTP 204"]}, 60, False, "healthy", "none", "",
     ["held", "info", "free", "http"]),
    ("mongo", {"free": 2**30, "mongo": "10.0.0.5:27017 does not answer a MongoDB ping"}, 60, False, "unhealthy",
     "recreate", "does not answer a MongoDB ping", ["held", "info", "free", "mongo", "image"]),
    # within the grace period only running and answering count: no backlog asked
    ("formula", {"info": inspected(age=5)}, 60, False, "healthy", "none", "", ["held", "info"]),
    ("formula", {"backlog": 5}, 60, False, "healthy", "none", "", ["held", "info", "backlog"]),
    ("formula", {"backlog": 500}, 60, False, "unhealthy", "recreate", "500 sensor reports wait in MongoDB",
     ["held", "info", "backlog", "image"]),
    ("formula", {"backlog": {"error": "connection refused"}}, 60, False, "unhealthy", "leave",
     "cannot check: the formula's backlog in 10.0.0.5:27017 (connection refused)", ["held", "info", "backlog"]),
    ("sensor", dict(MOVING, targets=["rapl", "global", "web"]), 60, False, "healthy", "none", "",
     ["held", "info", "newest", "seen", "targets"]),
    ("sensor", dict(MOVING, targets={"error": "timeout"}), 60, False, "healthy", "none", "",
     ["held", "info", "newest", "seen", "targets"]),
    ("sensor", {"newest": {"error": "timed out"}}, 60, False, "unhealthy", "leave",
     "cannot check: the sensor's newest point in http://i:8086 (timed out)", ["held", "info", "newest"]),
    ("sensor", dict(STALE, refuses="HTTP 500: no space left on device"), 60, False, "unhealthy", "leave",
     "does not store points (HTTP 500: no space left on device)", ["held", "info", "newest", "seen", "refuses"]),
    # stale, its host fine and its output quiet: a hung sensor, recreated
    ("sensor", dict(STALE, sensor=host()), 60, False, "unhealthy", "recreate", "has not changed for 500 s",
     ["held", "info", "newest", "seen", "refuses", "sensor", "image"]),
    # silent failures: stale, or fresh without a container, for a reason on its host
    ("sensor", dict(STALE, sensor=host(basepath_exists=False, mounts="")), 60, False, "unhealthy", "leave",
     "the perf_event cgroup controller is not mounted", ["held", "info", "newest", "seen", "refuses", "sensor"]),
    ("sensor", dict(STALE, sensor=host(basepath_exists=False, version=2, config=dict(CONFIG, cgroup_basepath="/x"))),
     60, False, "unhealthy", "leave", "its cgroup_basepath /x does not exist on its host",
     ["held", "info", "newest", "seen", "refuses", "sensor"]),
    ("sensor", dict(MOVING, targets=["rapl", "global"], refuses=None, sensor=host(basepath_exists=False)), 60, False,
     "unhealthy", "leave", "its cgroup_basepath /sys/fs/cgroup/perf_event does not exist",
     ["held", "info", "newest", "seen", "targets", "refuses", "sensor"]),
    ("sensor", dict(MOVING, targets=["rapl", "global"], refuses=None, sensor=host()), 60, False, "unhealthy",
     "recreate", "count no container while 3 run on its host",
     ["held", "info", "newest", "seen", "targets", "refuses", "sensor", "image"]),
    ("sensor", dict(MOVING, targets=["rapl"], refuses=None, sensor=host(containers=0)), 60, False, "healthy", "none",
     "", ["held", "info", "newest", "seen", "targets", "refuses", "sensor"]),
    # fresh points without a container from an InfluxDB that refuses writes: not the sensor's fault
    ("sensor", dict(MOVING, targets=["rapl", "global"], refuses="HTTP 500: no space left on device", sensor=host()),
     60, False, "unhealthy", "leave", "does not store points (HTTP 500: no space left on device); recreating the "
     "sensor would not help", ["held", "info", "newest", "seen", "targets", "refuses"]),
    ("sensor", dict(STALE, sensor=host(logs="perf: event 'RAPL_ENERGY_PKG' is invalid or unsupported by this machine")),
     60, False, "unhealthy", "leave", "system group 'rapl' cannot count event 'RAPL_ENERGY_PKG', so it sends no `all`",
     ["held", "info", "newest", "seen", "refuses", "sensor"]),
    ("sensor", dict(STALE, sensor=host(logs="perf<all>: failed to setup perf for group=rapl pkg=0 (EACCES)\n")),
     60, False, "unhealthy", "leave", "its system group 'rapl' (RAPL_ENERGY_PKG) cannot be opened on its host",
     ["held", "info", "newest", "seen", "refuses", "sensor"]),
    ("sensor", dict(STALE, sensor=host(logs="perf<all>: failed opening perf event for group=rapl cpu=1 "
                                            "event=RAPL_ENERGY_PKG errno=1\nperf<all>: cannot initialize perf")),
     60, False, "unhealthy", "leave", "its system group 'rapl' (RAPL_ENERGY_PKG) cannot be opened",
     ["held", "info", "newest", "seen", "refuses", "sensor"]),
    ("sensor", {"info": inspected("exited"), "sensor": host(logs="capabilities: Failed to enable required process "
                                                                 "capabilities: Operation not permitted")}, 60, False,
     "unhealthy", "leave", "CAP_PERFMON", ["held", "info", "sensor"]),
    ("sensor", {"info": inspected("exited"), "sensor": host(logs="config: Failed to get cgroup basepath (/x) "
                                                                 "information: No such file or directory")}, 60, False,
     "unhealthy", "leave", "does not exist on its host", ["held", "info", "sensor"]),
    # a container target that fails to open is no fault of the whole sensor
    ("sensor", dict(STALE, sensor=host(logs="perf<web>: failed to setup perf for group=core pkg=0\n")),
     60, False, "unhealthy", "recreate", "has not changed", ["held", "info", "newest", "seen", "refuses", "sensor", "image"]),
    # a sensor that exited: its last output says why
    ("sensor", {"info": inspected("exited"), "sensor": host(logs="config: event 'LLC_MISSES' is invalid or "
                                                                 "unsupported by this machine")}, 60, False,
     "unhealthy", "leave", "cannot count event 'LLC_MISSES' (group core)", ["held", "info", "sensor"]),
    ("sensor", {"info": inspected("exited"), "sensor": host(logs="Failed to get cgroup basepath")}, 60, False,
     "unhealthy", "leave", "does not exist on its host", ["held", "info", "sensor"]),
    ("sensor", {"info": inspected("exited"), "sensor": host(logs="failed to ping storage module")}, 60, False,
     "unhealthy", "recreate", "its MongoDB did not answer when it started", ["held", "info", "sensor", "image"]),
    ("sensor", {"info": inspected("exited"), "sensor": host(basepath_exists=False)}, 60, False,
     "unhealthy", "recreate", "the container is exited", ["held", "info", "sensor", "image"]),
    # within its grace period, a sensor Docker restarted after it exited by itself (restart_policy)
    # is in a loop when its output says why it exits; a quiet one, or one started by hand, warms up
    ("sensor", {"info": inspected(age=2, restarts=3), "sensor": host(logs="config: json: Failed to add event "
                                                                          "'RAPL_NOPE' to group 'rapl'")}, 60, False,
     "unhealthy", "leave", "system group 'rapl' cannot count event 'RAPL_NOPE'", ["held", "info", "sensor"]),
    ("sensor", {"info": inspected(age=2, restarts=3), "sensor": host()}, 60, False, "healthy", "none", "",
     ["held", "info", "sensor"]),
    # it failed once (its MongoDB did not answer then) and runs now: warming up, not recreated
    ("sensor", {"info": inspected(age=2, restarts=1), "sensor": host(logs="failed to ping storage module")}, 60,
     False, "healthy", "none", "", ["held", "info", "sensor"]),
    ("sensor", {"info": inspected(age=2), "sensor": host(logs="config: json: Failed to add event 'RAPL_NOPE' to "
                                                              "group 'rapl'")}, 60, False, "healthy", "none", "",
     ["held", "info"]),
]


@pytest.mark.parametrize("component, facts, grace, started_here, status, action, words, asked", CASES)
def test_the_verdict(component, facts, grace, started_here, status, action, words, asked):
    given, order = dict(BASE, **facts), []

    def gather(name, so_far):
        assert name not in so_far  # each fact once
        order.append(name)
        return given[name]

    found, _ = verdict.judge(spec(component), gather, grace, NOW, started_here, minion="node-a")
    assert (found["status"], found["action"]) == (status, action)
    assert words in found["reason"]
    assert order == asked  # only what the decision depends on, in the order it is needed
    if action == "leave" and component == "sensor" and "sensor" in asked:
        assert "Fix:" in found["reason"]


def test_a_verdict_step_asks_for_one_fact_at_a_time():
    assert verdict.verdict(spec("mongo"), {}, 60, NOW) == {"need": "held"}
    assert verdict.verdict(spec("mongo"), {"held": ""}, 60, NOW) == {"need": "info"}


def test_what_the_freshness_check_keeps_comes_back_with_the_verdict():
    first = dict(BASE, newest=NOW - 5, seen=None, targets=["rapl", "web"])
    found, _ = verdict.judge(spec("sensor"), lambda name, _: first[name], 60, NOW)
    assert found["status"] == "healthy" and found["keep"] == {KEY: {"newest": NOW - 5, "at": NOW}}
    kept = {"newest": NOW - 5, "at": NOW - 30}
    again = dict(first, seen=kept)
    found, _ = verdict.judge(spec("sensor"), lambda name, _: again[name], 60, NOW)
    assert found["keep"] is None  # nothing new to keep


def test_a_never_seen_sensor_past_its_grace_is_stale_at_once():
    facts = dict(BASE, newest=None, seen=None, refuses=None, sensor=host())
    found, _ = verdict.judge(spec("sensor"), lambda name, _: facts[name], 60, NOW)
    assert found["action"] == "recreate" and "no point at all" in found["reason"]


def test_reasons_that_a_recreation_cannot_mend_are_left_as_they_are():
    assert health.full_reason(SPACE, 0).startswith(health.LEFT_AS_IS)
    left = dict(BASE, free=0)
    found, _ = verdict.judge(spec("influxdb"), lambda name, _: left[name], 60, NOW)
    assert found["action"] == "leave"


def test_an_image_missing_verdict_says_so():
    facts = dict(BASE, info=None, image=False)
    found, _ = verdict.judge(spec("formula"), lambda name, _: facts[name], 60, NOW, minion="node-a")
    assert found["image_missing"] is True and "docker pull img:1" in found["reason"]


@pytest.mark.parametrize("before, status, reason, news", [
    (None, "unhealthy", "x", True),
    ({"status": "healthy", "reason": ""}, "unhealthy", "x", True),
    ({"status": "unhealthy", "reason": "stale for 61 s (limit 60 s)"}, "unhealthy", "stale for 125 s (limit 60 s)", False),
    ({"status": "unhealthy", "reason": "volume full: 3.0 MB free"}, "unhealthy", "cgroup_basepath /x missing", True),
])
def test_an_unhealthy_container_is_news_once_per_reason(before, status, reason, news):
    assert health.news(before, status, reason) is news


@pytest.mark.parametrize("line, words", [
    ("[E] config: json: Unknown parameter: 'discovery_interval'", "Unknown parameter: 'discovery_interval'"),
    ("[E] config: Events group 'core' is empty", "Events group 'core' is empty"),
    ("[E] config: You must provide event(s) to monitor", "You must provide event(s) to monitor"),
])
def test_a_sensor_that_refuses_the_rest_of_its_config_is_left_with_the_message_and_the_fix(line, words):
    """hwpc-sensor 1.7.0's other refusals (config.c, config_json.c): named, not recreated in a loop."""
    found = sensor_faults.fault(host(logs=f"I: build: version 1.7.0\n{line}\n"), stopped=True)
    assert found["leave"] is True
    assert f"refused its config ('{words}')" in found["reason"] and "Fix:" in found["reason"]


def test_an_event_refusal_still_names_its_event_and_group_before_the_other_refusals():
    logs = "[E] config: json: Failed to add event 'NOT_AN_EVENT' to group 'core'\n[E] config: json: Events group 'x'"
    found = sensor_faults.fault(host(logs=logs), stopped=True)
    assert "cannot count event 'NOT_AN_EVENT' (group core)" in found["reason"]


def test_what_a_sensor_logs_reaches_a_reason_printable_and_bounded():
    """A compromised or broken sensor's output: no newline-spanning capture, no control characters,
    no unbounded text into reasons, events and the master's logs."""
    flood = "Failed to add event '" + "A" * 5000 + "\nSECRET=hunter2\n' to group 'g'"
    found = sensor_faults.fault(host(logs=flood), stopped=True)
    assert found is None or ("SECRET" not in found["reason"] and len(found["reason"]) <= sensor_faults.MAX_REASON)
    found = sensor_faults.fault(host(logs="perf<all>: failed to setup perf for group=rapl\x1b[2J " + "x" * 9000))
    assert found and "\x1b" not in found["reason"] and len(found["reason"]) <= sensor_faults.MAX_REASON
    found = sensor_faults.fault(host(logs="[E] config: json: Unknown parameter: '\x1b[2J\r'"), stopped=True)
    assert "\x1b" not in found["reason"] and "\r" not in found["reason"]
    comment = sensor_faults.stopped_comment("node-a", {"event": "E\x1b" * 100, "group": "core"})
    assert "\x1b" not in comment
