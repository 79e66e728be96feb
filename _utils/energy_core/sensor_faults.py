"""Why an hwpc-sensor that runs can still count nothing useful, and the fix (pure).

hwpc-sensor fails silently in ways its process status does not show: with a ``cgroup_basepath``
that does not exist, 1.3.0 runs and never reports a container (1.4.0 and later exit with ``Failed
to get cgroup basepath``); on a cgroup v1 host without the perf_event controller mounted there is
no basepath to read; a system group whose event cannot be opened leaves no ``all`` report
(SmartWatts needs it for every tick): it logs ``perf<all>: failed to setup perf for group=<G>``. A refused event stops it: 1.3.0 says ``config: event '<E>' is
invalid or unsupported by this machine`` (no group: the group is found in the config the formula
wrote), 1.4.0 and later ``config: json: Failed to add event '<E>' to group '<G>'``. 1.3.0 exits
with ``failed to ping storage module`` when its MongoDB does not answer at start. 1.7.0 refuses
the rest of a bad config with ``config: json: Unknown parameter: '<k>'``, ``config: Events group
'<G>' is empty`` and the like (``CONFIG_REFUSED``).

``fault(host)`` reads what the Salt layer gathered of the sensor's host and output (``host``, see
``host_facts``) and says what is wrong: ``{"reason", "leave"}`` (``leave``: recreating the sensor
would not help) or None.
"""

import re

# how hwpc-sensor says it cannot count an event of its config, before it exits (1.4 and later;
# 1.3 and earlier, which names no group); a missing rapl PMU shows as its RAPL event refused
REFUSALS = (re.compile(r"Failed to add event '(?P<event>[^'\n]{1,128})' to group '(?P<group>[^'\n]{1,128})'"),
            re.compile(r"event '(?P<event>[^'\n]{1,128})' is invalid or unsupported by this machine"))
# a group that cannot be opened at run time: the sensor stays up without that target's reports
# (1.7.0: "perf<all>: failed opening perf event for group=rapl cpu=1 event=RAPL_ENERGY_PKG errno=1")
FAILED_OPEN = re.compile(r"perf<(?P<target>[^>\n]{0,256})>: failed (?:to setup perf|opening perf event) "
                         r"for group=(?P<group>[^\s,]{1,128})(?:[^\n]*? event=(?P<event>[^\s,]{1,128}))?")
MAX_REASON = 600  # a reason carries words of the sensor's output: printable, and this long at most
NO_BASEPATH = ("Failed to get cgroup basepath", "Invalid cgroup basepath")
# the other words of a config the sensor refuses, before it exits (1.7.0 config.c, config_json.c):
# "config: json: Unknown parameter: 'k'", "config: Events group 'g' is empty", "config: You must ..."
CONFIG_REFUSED = re.compile(r"config: (?:json: |cli: )?(?P<message>(?:Unknown parameter|Invalid parameter|Events group"
                            r"|You must provide|Invalid '|Configuration file is empty|Missing extension|Unsupported "
                            r"configuration|Storage module|The storage module)[^\n]*)")
NO_CAPABILITY = "Failed to enable required process capabilities"
NO_STORAGE = "failed to ping storage module"
# targets of a sensor's points that are not containers (SmartWatts' measured and modelled totals)
NOT_CONTAINERS = ("rapl", "global", "all")
PERF_EVENT_MOUNT = "mkdir -p /sys/fs/cgroup/perf_event && mount -t cgroup -o perf_event cgroup /sys/fs/cgroup/perf_event"


def config_groups(config):
    """``{group: ("system" | "container", [events])}`` of a sensor config (the formula's JSON)."""
    found = {}
    for kind in ("system", "container"):
        for group, entry in ((config or {}).get(kind) or {}).items():
            events = entry.get("events") if isinstance(entry, dict) else None
            found[str(group)] = (kind, [str(e) for e in events or []])
    return found


def refusal(logs, groups=None):
    """``{"event", "group", "kind"}`` when the sensor's output says it refused an event, else None.
    The group is the one the message names (1.4.0 and later), else the group of the config
    (``config_groups``) that holds the event (1.3.0 names none); ``kind`` is system or container."""
    groups = groups or {}
    for pattern in REFUSALS:
        match = pattern.search(logs or "")
        if match:
            event = match.group("event")
            group = match.groupdict().get("group") or next(
                (g for g, (_, events) in sorted(groups.items()) if event in events), None)
            return {"event": event, "group": group or "unknown (not in the sensor's config)",
                    "kind": groups.get(group, (None,))[0]}
    return None


def perf_event_mounted(mounts):
    """Whether a cgroup v1 hierarchy with the perf_event controller is mounted (``/proc/mounts`` text)."""
    for line in (mounts or "").splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "cgroup" and "perf_event" in fields[3].split(","):
            return True
    return False


def host_facts(config, logs, cgroup_version, mounts, basepath_exists, containers):
    """What ``fault`` reads: ``config`` (the sensor's JSON config, or None), ``logs`` (its last
    output), ``cgroup_version`` (1 or 2), ``mounts`` (``/proc/mounts``), ``basepath_exists``
    (whether the config's cgroup_basepath is a directory on the host), ``containers`` (how many
    containers run on the host)."""
    config = config if isinstance(config, dict) else {}
    return {"basepath": config.get("cgroup_basepath"), "basepath_exists": bool(basepath_exists),
            "cgroup_version": cgroup_version,
            "perf_event": perf_event_mounted(mounts) if cgroup_version == 1 else None,
            "containers": int(containers or 0), "groups": config_groups(config), "logs": logs or ""}


def counts_containers(targets):
    """Whether a sensor's recent points include a container (a target other than the totals)."""
    return any(str(t) not in NOT_CONTAINERS for t in targets or [])


def stopped_comment(minion, refused, cpu=None):
    """What ``energy_heal.stays_up`` says of a sensor it stopped because it refused an event of its
    config (``refused``: ``refusal``'s answer), with the fix."""
    event = printable(refused["event"], 128)
    return (f"the hwpc-sensor on {minion} refused its config: this machine cannot count event "
            f"'{event}' (group {printable(refused['group'], 128)}), so the sensor exits; it is stopped rather than "
            f"left restarting. Fix: remove '{event}' from energy:sensor:events / "
            f"energy:sensor:extra_events for {cpu or 'this CPU name'} (salt {minion} grains.get energy:pmu_events "
            "lists what it offers), or run the sensor on a machine that has it.")


def _refused(found):
    event, group = found["event"], found["group"]
    what = (f"its system group '{group}' cannot count event '{event}', so it sends no `all` report "
            "(SmartWatts needs one each tick)") if found["kind"] == "system" else (
        f"this machine cannot count event '{event}' (group {group})")
    return {"reason": f"the hwpc-sensor refused its config: {what}. Fix: remove '{event}' from energy:sensor:events "
                      "or energy:sensor:extra_events for this CPU name (grains.get energy:pmu_events lists what "
                      "this machine offers), or run the sensor on a machine that has it", "leave": True}


def _no_basepath(host):
    basepath = host.get("basepath") or "(none set)"
    if host.get("cgroup_version") == 1 and host.get("perf_event") is False:
        return {"reason": f"the perf_event cgroup controller is not mounted on its host, so its cgroup_basepath "
                          f"{basepath} holds no container and the sensor counts none. Fix: on the host, "
                          f"{PERF_EVENT_MOUNT}, then restart the containers to measure (Docker puts a container in "
                          "that hierarchy when it starts it) and the sensor", "leave": True}
    return {"reason": f"its cgroup_basepath {basepath} does not exist on its host, so the sensor counts no "
                      "container. Fix: a cgroup v2 host has /sys/fs/cgroup, a v1 host needs the perf_event "
                      f"controller at /sys/fs/cgroup/perf_event ({PERF_EVENT_MOUNT}); check the host's energy "
                      "grains (cgroup_version, cgroup_perf_event) and apply energy.sensor again", "leave": True}


def _failed_open(logs, groups):
    """The system group the sensor's output says it could not open (no ``all`` report), or None."""
    for match in FAILED_OPEN.finditer(logs or ""):
        group = match.group("group")
        if match.group("target") == "all" or groups.get(group, (None,))[0] == "system":
            events = match.group("event") or ", ".join(groups.get(group, (None, []))[1]) or "?"
            return {"reason": f"its system group '{group}' ({events}) cannot be opened on its host (its output: "
                              f"'{match.group(0)}'), so it sends no `all` report and SmartWatts computes no power. "
                              f"Fix: give the sensor what perf_event_open needs for {group} on that host (the "
                              "capability of docs/security.md, the host's perf_event_paranoid), or remove the event "
                              "this machine cannot open from energy:sensor:events", "leave": True}
    return None


def printable(text, limit=MAX_REASON):
    """``text`` with what is not printable replaced, cut to ``limit`` characters: words of a
    container's output go into reasons, events and logs on the master."""
    text = "".join(c if c.isprintable() else "?" for c in str(text))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def fault(host, stopped=False, no_containers=False):
    """What is wrong with a sensor (``{"reason", "leave"}``) from ``host`` (``host_facts``), or None.
    ``stopped``: its container does not run; ``no_containers``: its points are fresh but count no
    container. The reason is printable and bounded (``printable``)."""
    found = _fault(host, stopped, no_containers)
    return dict(found, reason=printable(found["reason"])) if found else None


def _fault(host, stopped, no_containers):
    host = host or {}
    logs = host.get("logs") or ""
    found = refusal(logs, host.get("groups"))
    if found:
        return _refused(found)
    other = CONFIG_REFUSED.search(logs)
    if other:
        said = other.group("message").strip()[:160]  # the sensor's own words (key names, no values), bounded
        return {"reason": f"the hwpc-sensor refused its config ('{said}') and exits. Fix: "
                          "the formula writes that file from energy:sensor (its events, extra_events and options): "
                          "make energy:sensor:tag a release this formula supports (docs/versions.md) and remove "
                          "what the message names, then apply energy.sensor", "leave": True}
    found = _failed_open(logs, host.get("groups") or {})
    if found:
        return found
    if any(words in logs for words in NO_BASEPATH) or (not stopped and host.get("basepath") and not host.get("basepath_exists")):
        return _no_basepath(host)
    if not stopped and host.get("cgroup_version") == 1 and host.get("perf_event") is False:
        return _no_basepath(host)
    if NO_CAPABILITY in logs:
        return {"reason": "the hwpc-sensor cannot raise the capability it counts with (CAP_PERFMON), so it exits. "
                          "Fix: give its container that capability (a Docker engine that knows CAP_PERFMON, see "
                          "docs/security.md), then apply energy.sensor", "leave": True}
    if stopped and NO_STORAGE in logs:
        return {"reason": "the hwpc-sensor exited: its MongoDB did not answer when it started (failed to ping "
                          "storage module)", "leave": False}
    if no_containers and host.get("containers"):
        return {"reason": f"the sensor's points count no container while {host['containers']} run on its host. "
                          f"Fix: check that its cgroup_basepath {host.get('basepath')} holds the containers' "
                          "cgroups (docker inspect -f '{{.HostConfig.CgroupParent}}', the host's cgroup driver)",
                "leave": False}
    return None
