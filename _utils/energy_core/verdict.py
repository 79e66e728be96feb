"""What is wrong with a container of the stack, and what to do: the one verdict that the heal
schedule (``energy_heal.heal_check``), the reactor (``energy_heal.react``) and the ``energy_heal.healthy`` state
act on. Pure: it reads facts, it never fetches them.

The Salt layer gathers the facts (Docker's inspection, the maintenance windows, the answers of the
probes) and passes them in a dict. ``verdict`` works in steps: given the facts gathered so far, it
returns either ``{"need": <fact>}`` (the next fact its decision depends on) or the verdict. The
Salt layer gathers what is asked, once, and asks again (``judge``). So each probe runs at most
once per check, and only when the decision depends on it: a stopped container is not pinged, one
in its warm-up is not asked for its backlog, an InfluxDB is asked to store a point only when a
sensor's points stopped coming, the sensor's host is looked at only when its sensor is stale or
counts no container.

The facts (what the Salt layer answers for each name):

``held``      why a maintenance window holds the container ('' when none)
``info``      Docker's inspection of the container (None: missing)
``free``      free bytes of its data volume (None: cannot tell)
``mongo``     None when its MongoDB answers a ping, else why not
``http``      ``[answers, what was seen]`` of its HTTP endpoint
``backlog``   reports waiting in the formula's MongoDB, or ``{"error": ...}``
``newest``    its sensor's newest measured point (epoch s, None: none), or ``{"error": ...}``
``seen``      what the previous freshness check kept for that sensor (``health.freshness``)
``refuses``   None when the sensor's InfluxDB stores a point, else what it answered
``targets``   the targets of the sensor's points of the last ``max_age`` seconds, or ``{"error": ...}``
``sensor``    the sensor's host and output (``sensor_faults.host_facts``)
``image``     whether the container's image is on its host

The verdict: ``{"status": "healthy" | "held" | "watched" | "unhealthy", "action": "none" | "recreate"
| "leave", "reason": str, "keep": {sensor key: freshness kept} or None}``, and ``image_missing``
when the reason is that the container's image is not on its host.
"""

from . import health, sensor_faults
from .stack import WATCHED  # a state run that just started one leaves it to energy_heal.stays_up


class _Need(Exception):
    """A fact the decision depends on is not gathered yet."""


def verdict(spec, facts, grace, now, started_here=False, minion=None):
    """The verdict on container ``spec`` (``name``, ``component``, ``run``, ``health``), or
    ``{"need": <fact>}``. ``grace``: seconds of warm-up during which a container is judged only on
    running and answering; ``now``: the checking host's clock; ``started_here``: this state run
    (re)started the container."""

    def fact(key):
        if key not in facts:
            raise _Need(key)
        return facts[key]

    try:
        return _judge(spec, fact, grace, now, started_here, minion)
    except _Need as need:
        return {"need": need.args[0]}


def judge(spec, gather, grace, now, started_here=False, minion=None, facts=None):
    """``(verdict, facts)``: ``verdict`` run to its end, each fact asked of ``gather(name, facts)``
    once (the Salt layer's probes)."""
    facts = dict(facts or {})
    while True:
        found = verdict(spec, facts, grace, now, started_here, minion)
        if "need" not in found:
            return found, facts
        facts[found["need"]] = gather(found["need"], facts)


def _result(status, action, reason, keep=None, **more):
    return dict(more, status=status, action=action, reason=reason, keep=keep)


def _judge(spec, fact, grace, now, started_here, minion):
    name, component = spec["name"], spec["component"]
    held = fact("held")
    if held:
        return _result("held", "none", held)
    if component in WATCHED and started_here:
        # the orch's last phase and the full schedule apply energy.heal with the components' SLS
        # files: a container they just started is energy_heal.stays_up's to judge (a sensor that
        # refuses its config is stopped there, not recreated here)
        return _result("watched", "none", f"{component} container {name} was started by this state run: "
                                          "energy_heal.stays_up watches it")
    reason, leave, keep = problem(spec.get("health") or {}, fact, grace, now, component == "sensor")
    if reason is None:
        return _result("healthy", "none", "", keep)
    if leave or reason.startswith(health.LEFT_AS_IS):
        return _result("unhealthy", "leave", reason, keep)
    if not fact("image"):
        image = spec["run"]["image"]
        return _result("unhealthy", "leave", health.image_missing(component, name, reason, image, minion), keep,
                       image_missing=True)
    return _result("unhealthy", "recreate", reason, keep)


def problem(probe, fact, grace, now, is_sensor=False):
    """``(reason, leave, keep)``: what is wrong (None: nothing), whether recreating the container
    would not help (``leave``), and what the sensor's freshness check keeps (or None)."""
    info = fact("info")
    if info is None:
        return "the container is missing", False, None
    if probe.get("space"):
        full = health.full_reason(probe["space"], fact("free"))
        if full:
            return full, True, None
    status = (info.get("State") or {}).get("Status")
    if status != "running":
        fault = sensor_faults.fault(fact("sensor"), stopped=True) if is_sensor else None
        return (fault["reason"], fault["leave"], None) if fault else (f"the container is {status}", False, None)
    if "mongo" in probe and fact("mongo"):
        return fact("mongo"), False, None
    if "http" in probe:
        ok, detail = fact("http")
        if not ok:
            return f"{detail} (the service does not answer)", False, None
    running_for = health.age(info, now)
    if running_for is not None and running_for < grace:
        if is_sensor and info.get("RestartCount"):
            # Docker restarted it after it exited on its own (restart_policy; a start by hand sets
            # the count back to 0): not a warm-up but a loop, when its output says why it exits at
            # every start. Only such faults (left as they are): its output also holds earlier runs,
            # and one that failed once (its MongoDB down) may be running fine now
            fault = sensor_faults.fault(fact("sensor"), stopped=True)
            if fault and fault["leave"]:
                return fault["reason"], True, None
        return None, False, None
    if "backlog" in probe:
        return _backlog(probe["backlog"], fact("backlog")), False, None
    if "fresh" in probe:
        return _fresh(probe["fresh"], fact, now)
    return None, False, None


def _backlog(probe, waiting):
    if isinstance(waiting, dict):
        return f"{health.UNCHECKED}the formula's backlog in {probe['uri'].rpartition('@')[2]} ({waiting.get('error')})"
    if waiting > probe["max"]:
        return f"{waiting} sensor reports wait in MongoDB: the formula is not consuming them"
    return None


def fresh_key(probe):
    """The key of a sensor in the freshness file (``health.Seen``)."""
    return f"{probe['url']}|{probe['database']}|{probe['sensor']}"


def _fresh(probe, fact, now):
    """A sensor's points: stale (its InfluxDB refusing points, or a fault on its host), or fresh
    but counting no container while containers run on its host."""
    newest = fact("newest")
    if isinstance(newest, dict):
        return f"{health.UNCHECKED}the sensor's newest point in {probe['url']} ({newest.get('error')})", False, None
    seen = fact("seen")
    why, kept = health.freshness(newest, now, probe["max_age"], seen)
    keep = {fresh_key(probe): kept} if kept is not None and kept != seen else None
    if why:
        refused = _refused(probe, fact)
        if refused:  # the sensor is not the cause: its InfluxDB cannot store (a full volume)
            return refused, False, keep
        fault = sensor_faults.fault(fact("sensor"))
        # said without the figures of ``why``, which change at every check: the news is the fault
        return (f"the sensor's points stopped coming: {fault['reason']}", fault["leave"], keep) if fault else (
            why, False, keep)
    targets = fact("targets")
    if isinstance(targets, dict) or sensor_faults.counts_containers(targets):
        return None, False, keep  # the targets could not be read: judged by freshness alone
    # an InfluxDB that refuses writes may still read back a part of what it was sent (InfluxDB 1.x
    # caches a point before its WAL refuses it): the targets then say nothing of the sensor
    refused = _refused(probe, fact)
    if refused:
        return refused, False, keep
    fault = sensor_faults.fault(fact("sensor"), no_containers=True)
    return (fault["reason"], fault["leave"], keep) if fault else (None, False, keep)


def _refused(probe, fact):
    """Why the sensor's points cannot be judged when its InfluxDB refuses a write, else None."""
    refused = fact("refuses")
    return (f"{health.UNCHECKED}InfluxDB at {probe['url']} does not store points ({refused[:300]}); "
            "recreating the sensor would not help") if refused else None
