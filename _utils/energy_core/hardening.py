"""What each container of the stack may do, and how its clients reach it (pure).

Every container joins the stack's own Docker network (``energy:network:name``, a user-defined
bridge): none shares the host's network, so no PowerAPI actor socket (SmartWatts binds them on
``tcp://127.0.0.1:<random>`` and unpickles what arrives) is reachable from the host or any other
network namespace. A client reaches a database by container name when both run on the same Docker
engine, and by the database's published address otherwise (``endpoint``).

``PROFILES`` holds the per-component decisions (docs/security.md, "Container privileges", says
why for each); ``run_arguments`` turns them and the pillar's limits into
``docker_container.running`` arguments.
"""

import re

from . import names

# where each service listens inside its container (the upstream images' ports)
INTERNAL_PORT = {"mongo": 27017, "influxdb": 8086, "grafana": 3000}

NETWORK_LABEL = "energy.network"

# the root filesystem is read-only for every component: what the upstream images write at run time
# goes to their data volume or to these tmpfs mounts (checked against each image's entrypoint):
#   mongo      docker-entrypoint.sh writes its temporary init config in /tmp; mongod its socket
#              file (/tmp/mongodb-27017.sock); data and the image's /data/configdb are volumes.
#              It keeps Docker's default capabilities: the entrypoint chowns /data/db (CHOWN,
#              FOWNER, DAC_OVERRIDE) and steps down to the mongodb user with gosu (SETUID, SETGID)
#   influxdb   1.8: everything under /var/lib/influxdb (the volume; `influxd backup` writes there
#              too); the entrypoint's init-influxdb.sh runs as root on the first start: default
#              capabilities, as the data directory it creates belongs to the user it runs as
#   grafana    grafana-oss 10 runs as user 472 and logs to files in /var/log/grafana (the image's
#              GF_PATHS_LOGS) besides the console; sqlite and plugins live in /var/lib/grafana
#   formula    SmartWatts (Python) writes nothing outside /tmp (multiprocessing's temporary files)
#   sensor     hwpc-sensor writes nothing (reports go to MongoDB)
# cap_drop ALL: the component needs no capability at all (sensor: only the one perf needs,
# added back by sensor_capability)
TMPFS_OPTIONS = "rw,noexec,nosuid,nodev,size=64m"
PROFILES = {
    "mongo": {"tmpfs": ["/tmp"], "cap_drop": []},
    "influxdb": {"tmpfs": ["/tmp"], "cap_drop": []},
    "grafana": {"tmpfs": ["/tmp", "/var/log/grafana"], "cap_drop": ["ALL"]},
    "formula": {"tmpfs": ["/tmp"], "cap_drop": ["ALL"]},
    "sensor": {"tmpfs": ["/tmp"], "cap_drop": ["ALL"]},
}

# the kernel release that split CAP_PERFMON out of CAP_SYS_ADMIN
PERFMON_KERNEL = (5, 8)
# hwpc-sensor images before 1.7.0 set the file capability cap_sys_admin on the sensor binary and
# their entrypoint exits unless CAP_SYS_ADMIN is in the bounding set; 1.7.0 sets cap_perfmon and,
# first thing, raises CAP_PERFMON alone (capset): nothing else will do, so it needs a kernel and an
# engine that have CAP_PERFMON (seen with the real 1.7.0 binary, docs/versions.md)
PERFMON_SENSOR_IMAGE = "powerapi/hwpc-sensor"
PERFMON_SENSOR_TAG = (1, 7)


def network_name(conf):
    """The Docker network of the stack (``energy:network:name``)."""
    return conf["network"]["name"]


def _release(text, parts=2):
    """The leading numbers of a version or kernel release (``6.1.0-18-amd64`` -> (6, 1)), or None."""
    found = re.match(r"v?(\d+)" + r"\.(\d+)" * (parts - 1), str(text or ""))
    return tuple(int(n) for n in found.groups()) if found else None


def _perfmon_only(conf):
    """Whether the sensor image is an upstream release that demands CAP_PERFMON (1.7 and later)."""
    settings = conf["sensor"]
    tag = _release(settings["tag"])
    return settings["image"] == PERFMON_SENSOR_IMAGE and tag is not None and tag >= PERFMON_SENSOR_TAG


def sensor_capability(conf, facts):
    """The one capability hwpc-sensor gets (perf_event_open on other processes' cgroups, RAPL and
    MSR events): CAP_PERFMON for upstream 1.7 and later (the only one they accept:
    ``sensor_capability_problem`` says where they cannot have it); for other images CAP_PERFMON
    when the kernel has it (5.8 and later, fact ``kernel``) and the minion's Docker engine knows it
    (fact ``docker_perfmon``: some engines refuse the name); CAP_SYS_ADMIN otherwise, the only
    capability older kernels accept for it, and the one images before 1.7.0 demand."""
    settings = conf["sensor"]
    if _perfmon_only(conf):
        return "PERFMON"
    if settings["image"] == PERFMON_SENSOR_IMAGE:
        return "SYS_ADMIN"
    kernel = _release((facts or {}).get("kernel"))
    if kernel is None or kernel < PERFMON_KERNEL or (facts or {}).get("docker_perfmon") is not True:
        return "SYS_ADMIN"
    return "PERFMON"


def sensor_capability_problem(conf, facts, minion):
    """Why hwpc-sensor 1.7+ cannot start on ``minion`` (a kernel before 5.8 has no CAP_PERFMON; an
    engine that refuses the name cannot grant it), or None (also when the facts do not say)."""
    if not _perfmon_only(conf):
        return None
    facts = facts or {}
    kernel = _release(facts.get("kernel"))
    if kernel is not None and kernel < PERFMON_KERNEL:
        why = f"its kernel ({facts.get('kernel')}) predates CAP_PERFMON (Linux 5.8)"
    elif facts.get("docker_perfmon") is False:
        why = "its Docker engine refuses the capability name CAP_PERFMON (Debian 12's docker.io 20.10.24 does)"
    else:
        return None
    return (f"energy:sensor:tag: bad value {conf['sensor']['tag']!r} for {minion}: hwpc-sensor 1.7 and later "
            f"start only with CAP_PERFMON, and {why}. Fix: an engine and kernel that grant CAP_PERFMON, or "
            "energy:sensor:tag: '1.3.0' for that minion's pillar (it runs with CAP_SYS_ADMIN).")


def sensor_cgroup_bind(facts):
    """The bind of the host's perf_event cgroup hierarchy the sensor reads (read-only), or None.

    Only that hierarchy, not the host's /sys: the container's own /sys (Docker's read-only sysfs)
    already shows the PMUs and the CPU topology, and a read-only bind of the host's /sys is not
    recursive before Docker 25 (its cgroup mounts stay writable inside; seen on 20.10). A cgroup
    hierarchy is one mount, so its read-only bind is read-only throughout. On cgroup v1 the sensor
    SLS mounts the hierarchy first where the controller is enabled but not mounted (fact
    ``perf_event_mounted``); None where the controller is not enabled at all (fact
    ``cgroup_perf_event`` false): Docker would make the missing directory on the host, and the
    sensor could not count per container anyway."""
    facts = facts or {}
    if facts.get("cgroup_version") == 2:
        return "/sys/fs/cgroup:/sys/fs/cgroup:ro"
    if facts.get("cgroup_perf_event") is False:
        return None
    return "/sys/fs/cgroup/perf_event:/sys/fs/cgroup/perf_event:ro"


def run_arguments(conf, component):
    """The ``docker_container.running`` arguments every container of ``component`` gets: the
    stack's network, no-new-privileges, the memory and PID limits of ``energy:<component>:limits``,
    a read-only root filesystem with the tmpfs mounts of ``PROFILES`` and the capabilities it drops."""
    profile = PROFILES[component]
    limits = conf[component]["limits"]
    run = {
        "network_mode": network_name(conf),
        # no setuid binary, no file capability can raise a process above what it started with
        "security_opt": ["no-new-privileges"],
        "mem_limit": str(limits["memory"]),
        # swap would let a runaway container thrash instead of being stopped at its limit
        "memswap_limit": str(limits["memory"]),
        "pids_limit": int(limits["pids"]),
        "read_only": True,
        "tmpfs": {path: TMPFS_OPTIONS for path in profile["tmpfs"]},
    }
    if profile["cap_drop"]:
        run["cap_drop"] = list(profile["cap_drop"])
    return run


def same_engine(engines, one, other):
    """True when minions ``one`` and ``other`` run their containers on the same Docker engine: the
    same minion, or the same engine ID (fact ``docker_engine``). A minion that publishes another
    engine's ID only breaks its own connections: its clients then look for a container name their
    own engine does not have, and the databases stay reachable on their published addresses."""
    if one == other:
        return True
    mine, theirs = engines.get(one), engines.get(other)
    return bool(mine) and mine == theirs


def endpoint(engines, client, server, kind, container, address, port):
    """``(host, port)`` a container on minion ``client`` uses to reach the ``kind`` container
    ``container`` of minion ``server``: its name and inside port over the stack's network when both
    share an engine, its published ``address`` and ``port`` otherwise."""
    if same_engine(engines, client, server):
        return container, INTERNAL_PORT[kind]
    return address, port


def engines_of(role_facts):
    """``{minion: Docker engine ID or None}`` of every minion in the role facts."""
    engines = {}
    for members in role_facts.values():
        for minion, facts in (members or {}).items():
            engines[minion] = facts.get("docker_engine") or engines.get(minion)
    return engines


def networks_to_remove(found):
    """Of the networks named alike (``docker network ls`` entries: ``Id``, ``Created``,
    ``Containers``), the ones to remove: all but the oldest (ties by ID), and only those no
    container uses. Two minions of one engine creating the network at once may leave two; each
    keeps the same one."""
    ordered = sorted(found, key=lambda n: (str(n.get("Created") or ""), n.get("Id") or ""))
    return [n for n in ordered[1:] if not n.get("Containers")]


def stack_network(run):
    """The stack's own network a container of ``run`` (docker_container arguments) joins, or None
    (Docker's own networks, another container's, none given): what a recreation makes sure exists."""
    network = run.get("network_mode")
    if not isinstance(network, str) or network.startswith("container:") or network_problem(network):
        return None
    return network


def network_problem(name):
    """Why ``name`` cannot name the stack's network, or None."""
    if not isinstance(name, str) or not names.is_docker_name(name) or len(name) > names.MAX_NAME:
        return "a Docker network name: letters, digits, '_', '.', '-', starting with a letter or digit."
    if name in ("bridge", "host", "none", "default"):
        return f"a network of the stack's own: {name!r} is one of Docker's."
    return None
