"""What things are called: roles, components, container and volume names, labels, CPU slugs.

Every name the stack gives a container, volume, database or event is made here, so that the
execution module, the states, the runner (and through it the reactor) agree on them.
"""

import hashlib
import re

# the components, their roles, orders, phases and sets: derived from the component table (stack.py)
from .stack import CLEAN_ORDER, COMPONENTS, DATA_COMPONENTS, ORCH_PHASES, ROLE_OF, ROLES, WATCHED  # noqa: F401

# per_cpu: a MongoDB and an InfluxDB per CPU name; shared: one of each for all; dedicated: a whole
# stack next to each sensor
STRATEGIES = ("per_cpu", "shared", "dedicated")
# the states' __context__ key: the containers this state run (re)started (energy.container_running
# notes them, energy_heal.healthy leaves them to energy_heal.stays_up)
STARTED = "energy.started"

# the fields of the energy grain, as the mine publishes them (energy.facts adds ``address``)
FACT_KEYS = ("cpu_name", "cpu_vendor", "cpu_family", "cpu_model", "cpu_count", "cpu_base_freq_mhz",
             "tdp_w", "rapl_domains", "pmu_events", "virtual", "cgroup_version", "address",
             "powercap_domains", "pmu_name", "pmu_family", "pmu_event_names", "perf_event_paranoid", "kernel",
             "cgroup_perf_event", "perf_event_mounted", "cluster", "sensor_support", "docker_engine", "docker_perfmon",
             "msr_events")
MINE_FUNCTION = "energy.facts"


def published_facts(grain, engine, overrides, ips):
    """What ``energy.facts`` publishes: the ``energy`` grain, its Docker engine's facts, overridden
    by pillar ``energy:facts`` (only fact keys), plus ``address`` (an override, else the first of
    ``ips`` that is not loopback, else 127.0.0.1)."""
    result = dict(grain or {}, **(engine or {}))
    result.update({k: v for k, v in (overrides or {}).items() if k in FACT_KEYS})
    if not result.get("address"):
        result["address"] = next((ip for ip in ips if not ip.startswith("127.")), "127.0.0.1")
    return result

LABEL_COMPONENT = "energy.component"
LABEL_MINION = "energy.minion"
LABEL_CPU = "energy.cpu"
# on a sensor and a SmartWatts: the database containers they use. When the plan moves a database
# (another strategy, another host), the label changes and the dependent is recreated: SmartWatts'
# MongoDB puller does not survive its server going away (it stays up, reading nothing)
LABEL_MONGO = "energy.mongo"
LABEL_INFLUXDB = "energy.influxdb"
# a keyed digest (HMAC-SHA256, the key stays on the minion) of everything a container was created
# with: a re-run that finds the same digest, the same image and the container running has nothing
# to compare (docker compose's config-hash label does the same)
LABEL_CONFIG = "energy.config"

# event-driven healing: the docker_events engine on each minion fires EVENT_TAG/<Action>; the
# master's reactor listens to REACTOR_EVENT and renders REACTOR_SLS
ENGINE_NAME = "energy-docker-events"
NAMES_ENGINE = "energy-container-names"  # records container starts for salt-run energy.report
EVENT_TAG = "energy/docker"
REACTOR_EVENT = EVENT_TAG + "/*"
REACTOR_SLS = "salt://energy/reactor/heal.sls"
HEAL_EVENT = "energy/heal"  # energy/heal/<component>
MAINTENANCE_EVENT = "energy/maintenance"  # energy/maintenance/<on|off>


# MongoDB users the stack makes (authentication on): the image's root user, then one per purpose
MONGO_USERS = {"admin": "energy-admin", "sensor": "energy-sensor", "formula": "energy-formula"}
MONGO_AUTH_SOURCE = "admin"  # where the users live


def mongo_user(purpose, database, collection):
    """The MongoDB user (and role) of ``purpose`` (sensor or formula) for one report collection:
    ``energy-<purpose>-<cpu slug>``, and ``-<shard>`` for a shard's collection ``hwpc_<shard>``.
    Each may touch only that collection (components.MONGO_PRIVILEGES)."""
    slug = database[len("sensors_"):] if database.startswith("sensors_") else database
    shard = "" if collection == "hwpc" else "-" + (collection[len("hwpc_"):] if collection.startswith("hwpc_")
                                                   else collection)
    return f"{MONGO_USERS[purpose]}-{slug}{shard}"


def mongo_uri(address, port, user=None, password=None):
    """``mongodb://[user:password@]address:port`` (credentials percent-encoded, users in admin)."""
    from urllib.parse import quote  # pylint: disable=import-outside-toplevel

    if not user:
        return f"mongodb://{address}:{port}"
    return f"mongodb://{quote(user, safe='')}:{quote(password, safe='')}@{address}:{port}/?authSource={MONGO_AUTH_SOURCE}"


def safe_minion(minion):
    """A minion id as it appears in container names (Docker allows [a-zA-Z0-9_.-])."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", minion)


def container_name(minion, component, slug=None):
    """``energy-<minion>-<component>[-<slug>]``; data volumes carry the same name."""
    return f"energy-{safe_minion(minion)}-{component}" + (f"-{slug}" if slug else "")


def is_stack_name(name, minion):
    """True when ``name`` is a container name the stack gives on ``minion`` (any component).

    ``docker_container.running`` makes temporary containers with the stack's labels under random
    names: only names of this form are the stack's own."""
    if not isinstance(name, str) or not isinstance(minion, str) or not minion:
        return False
    prefix = f"energy-{safe_minion(minion)}-"
    if not name.startswith(prefix):
        return False
    rest = name[len(prefix):]
    return any(rest == c or (rest.startswith(c + "-") and re.fullmatch(r"[a-z0-9_]+(-[0-9]+)?", rest[len(c) + 1:]))
               for c in COMPONENTS)


MAX_NAME = 253  # the longest container or volume name the stack gives
MAX_DATABASE = 63  # MongoDB database names are under 64 bytes
MAX_SLUG = 40  # a CPU slug is cut there (with a hash of the full name), so database names stay short


def is_docker_name(name):
    """Docker's rule for container and volume names."""
    return re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name) is not None
ACTIONS = ("die", "destroy")


def reaction_refused(minion, event):
    """Why the reactor must not act on ``event`` (the data of ``energy/docker/<action>``) sent by
    ``minion``, or '' when it may: a die or destroy of a container of the stack that belongs to
    that minion. The event comes from a minion: nothing in it is trusted before this says ''."""
    if not isinstance(minion, str) or not minion or len(minion) > MAX_NAME:
        return "no valid minion id"
    if not isinstance(event, dict):
        return "the event data is not a mapping"
    action = event.get("Action")
    if action not in ACTIONS:
        return f"action {str(action)[:40]!r} is not one of {', '.join(ACTIONS)}"
    actor = event.get("Actor")
    attributes = actor.get("Attributes") if isinstance(actor, dict) else None
    if not isinstance(attributes, dict):
        return "the event has no Actor.Attributes"
    name = attributes.get("name")
    if not isinstance(name, str) or len(name) > MAX_NAME:
        return "the container name is missing or too long"
    if attributes.get(LABEL_MINION) != minion:
        return f"the container is not labelled {LABEL_MINION}={minion}"
    if not is_stack_name(name, minion):
        return f"{name[:80]!r} is not a container name the stack gives on {minion}"
    return ""


def labels(component, minion, cpu=None):
    """The labels of a container of the stack (what energy_inventory.deployed and the engine filter on)."""
    result = {LABEL_COMPONENT: component, LABEL_MINION: minion}
    if cpu is not None:
        result[LABEL_CPU] = cpu
    return result


def sensor_config_file(config_dir, minion):
    """Where the sensor of ``minion`` reads its JSON config (hwpc-sensor wants a .json name)."""
    return f"{config_dir}/{container_name(minion, 'sensor')}.json"


def grafana_dir(config_dir, minion):
    """Where Grafana's provisioning files and dashboards live on its minion."""
    return f"{config_dir}/{container_name(minion, 'grafana')}"


def cpu_slug(cpu_name):
    """A short identifier for a CPU name, for database and container names.

    ``Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz`` -> ``intel_xeon_gold_6130``.
    """
    short = re.sub(r"\((R|TM|r|tm)\)", " ", cpu_name)
    short = re.sub(r"@.*$", " ", short)
    short = re.sub(r"\b(CPU|Processor|[0-9]+-Core)\b", " ", short, flags=re.IGNORECASE)
    short = re.sub(r"[^a-z0-9]+", "_", short.lower()).strip("_")
    digest = hashlib.sha1(cpu_name.encode()).hexdigest()
    if len(short) > MAX_SLUG:
        short = f"{short[:MAX_SLUG - 7].rstrip('_')}_{digest[:6]}"
    return short or "cpu_" + digest[:8]


def cpu_slugs(cpu_names):
    """Slugs for a set of CPU names, unique: colliding short names get a hash of the full name."""
    short = {name: cpu_slug(name) for name in cpu_names}
    counts = {}
    for slug in short.values():
        counts[slug] = counts.get(slug, 0) + 1
    return {
        name: slug if counts[slug] == 1 else f"{slug}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"
        for name, slug in short.items()
    }


def sensor_database(slug):
    return f"sensors_{slug}"


def power_database(slug):
    return f"power_{slug}"


def plain_id(minion):
    """Whether ``minion`` can go into an ``L@`` list of a compound target as it is: Salt accepts
    commas and spaces in a minion id, which would change the target's meaning there."""
    return isinstance(minion, str) and bool(minion) and all(c.isalnum() or c in "._-" for c in minion)


def datasource_uid(slug):
    """Grafana uids are at most 40 characters: a stable hash of the CPU slug."""
    return "energy-" + hashlib.sha1(slug.encode()).hexdigest()[:12]
