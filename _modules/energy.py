"""
The ``energy`` execution module: configuration, validation and placement of the energy-monitoring
stack (hwpc-sensor -> MongoDB -> SmartWatts -> InfluxDB -> Grafana).

Everything that needs no ``__salt__`` is a plain function (``placement``, ``validate``,
``build_plan``, ``cpu_slug``) that unit tests import directly; the Salt functions
(``facts``, ``config``, ``plan``, ``hostname_to_influx``) only gather mine and pillar data and
call them.

.. code-block:: bash

    salt-call energy.plan
"""

import copy
import hashlib
import logging
import re

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover
    HAS_YAML = False

try:
    from salt.exceptions import CommandExecutionError
except ImportError:  # pragma: no cover - unit tests without Salt

    class CommandExecutionError(Exception):
        pass


log = logging.getLogger(__name__)

__virtualname__ = "energy"

ROLES = ("sensors", "mongos", "formulas", "influxdbs", "grafana")
COMPONENTS = ("sensor", "mongo", "formula", "influxdb", "grafana")
# the top-level keys of energy: in defaults.yaml (a unit test keeps the two equal)
KNOWN_KEYS = ("control", "roles", "facts", "config_dir", "restart_policy", "ready_timeout", "ping_timeout",
              "sensor", "mongo", "formula", "influxdb", "grafana", "heal", "clean")
FACT_KEYS = ("cpu_name", "cpu_vendor", "cpu_family", "cpu_model", "cpu_count", "cpu_base_freq_mhz",
             "tdp_w", "rapl_domains", "pmu_events", "virtual", "cgroup_version", "address")
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
MINE_FUNCTION = "energy.facts"


def __virtual__():
    if not HAS_YAML:
        return (False, "the energy module needs PyYAML")
    return __virtualname__


class PlanError(ValueError):
    """Bad configuration or mine data; the message names the pillar key, the value and the fix."""


# --------------------------------------------------------------------------- pure functions


def placement(cpus, roles):
    """
    Place one formula, one MongoDB and one InfluxDB per CPU name.

    ``cpus`` maps sensor minion id -> CPU name; ``roles`` maps ``mongos``, ``formulas``,
    ``influxdbs`` (and ``grafana``) to lists of minion ids. CPU names are taken in sorted order;
    the i-th gets ``mongos[i % len(mongos)]`` and so on over the sorted host lists, wrapping
    around when CPU names outnumber hosts. The result does not depend on input order.

    Returns ``{"cpus": {cpu_name: {"sensors", "mongo", "formula", "influxdb", "slots"}},
    "grafana": id or None}``; ``slots`` numbers the containers of one kind on one host
    (0, 1, ...), which the plan turns into distinct ports.

    CLI Example:

    .. code-block:: bash

        salt-call energy.placement '{"m1": "Xeon"}' '{"mongos": ["c"], "formulas": ["c"], "influxdbs": ["c"]}'
    """
    by_cpu = {}
    for minion in sorted(cpus):
        by_cpu.setdefault(cpus[minion], []).append(minion)
    names = sorted(by_cpu)
    hosts = {role: sorted(set(roles.get(role) or [])) for role in ("mongos", "formulas", "influxdbs")}
    if names:
        for role, members in hosts.items():
            if not members:
                raise PlanError(
                    f"energy:roles:{role} matches no minion, but {len(names)} CPU name(s) need one "
                    f"({', '.join(names)}). Fix: target at least one minion that publishes its energy "
                    f"facts in the mine (energy:roles:{role} or energy:control)."
                )
    result = {"cpus": {}, "grafana": (sorted(roles.get("grafana") or []) or [None])[0]}
    used = {}  # (kind, host) -> next slot
    for i, name in enumerate(names):
        entry = {"sensors": by_cpu[name], "slots": {}}
        for role, kind in (("mongos", "mongo"), ("formulas", "formula"), ("influxdbs", "influxdb")):
            host = hosts[role][i % len(hosts[role])]
            entry[kind] = host
            entry["slots"][kind] = used.get((kind, host), 0)
            used[(kind, host)] = entry["slots"][kind] + 1
        result["cpus"][name] = entry
    return result


def cpu_slug(cpu_name):
    """A short identifier for a CPU name, for database and container names.

    ``Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz`` -> ``intel_xeon_gold_6130``.
    """
    short = re.sub(r"\((R|TM|r|tm)\)", " ", cpu_name)
    short = re.sub(r"@.*$", " ", short)
    short = re.sub(r"\b(CPU|Processor|[0-9]+-Core)\b", " ", short, flags=re.IGNORECASE)
    short = re.sub(r"[^a-z0-9]+", "_", short.lower()).strip("_")
    return short or "cpu_" + hashlib.sha1(cpu_name.encode()).hexdigest()[:8]


def cpu_slugs(names):
    """Slugs for a set of CPU names, unique: colliding short names get a hash of the full name."""
    short = {name: cpu_slug(name) for name in names}
    counts = {}
    for slug in short.values():
        counts[slug] = counts.get(slug, 0) + 1
    return {
        name: slug if counts[slug] == 1 else f"{slug}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"
        for name, slug in short.items()
    }


def _is_port(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _describe(value):
    return repr(value) if not isinstance(value, str) else f"'{value}'"


def validate(conf):
    """
    Check a merged ``energy`` configuration; return the list of problems (empty when fine).

    Each problem names the pillar key, the bad value and the fix.

    CLI Example:

    .. code-block:: bash

        salt-call energy.validate
    """
    if conf is None:
        conf = {}
    if not isinstance(conf, dict):
        return [f"energy: must be a mapping, got {_describe(conf)}. Fix: see pillar.example."]
    errors = []

    def err(key, value, fix):
        errors.append(f"energy:{key}: bad value {_describe(value)}. Fix: {fix}")

    for key in sorted(set(conf) - set(KNOWN_KEYS)):
        err(key, conf[key], f"unknown key; remove it or use one of {', '.join(KNOWN_KEYS)}.")

    control = conf.get("control")
    if control is not None and not isinstance(control, str):
        err("control", control, "give the control minion's id (or a compound target) as a string.")
    roles = conf.get("roles") or {}
    if not isinstance(roles, dict):
        err("roles", roles, f"a mapping of {', '.join(ROLES)} to targets.")
        roles = {}
    for role in sorted(set(roles) - set(ROLES)):
        err(f"roles:{role}", roles[role], f"unknown role; the roles are {', '.join(ROLES)}.")
    for role in ROLES:
        target = roles.get(role)
        if target is None:
            if role != "sensors" and not control and not (role == "grafana" and not _grafana_enabled(conf)):
                err(f"roles:{role}", target,
                    "set energy:control to the id of the minion that runs the databases and formulas, "
                    f"or set energy:roles:{role} to a compound target or a list of minion ids.")
        elif isinstance(target, list):
            if not target or not all(isinstance(m, str) and m for m in target):
                err(f"roles:{role}", target, "a non-empty list of minion ids (strings), or a compound target.")
        elif not isinstance(target, str) or not target.strip():
            err(f"roles:{role}", target, "a compound target string (e.g. 'G@energy:cpu_vendor:intel') "
                "or a list of minion ids.")

    facts = conf.get("facts") or {}
    if not isinstance(facts, dict):
        err("facts", facts, f"a mapping of fact names ({', '.join(FACT_KEYS)}) to values.")
    else:
        for key in sorted(set(facts) - set(FACT_KEYS)):
            err(f"facts:{key}", facts[key], f"unknown fact; the facts are {', '.join(FACT_KEYS)}.")

    for key in ("config_dir",):
        if not isinstance(conf.get(key), str) or not conf.get(key, "").startswith("/"):
            err(key, conf.get(key), "an absolute directory path on the minions.")
    policy = conf.get("restart_policy")
    if not isinstance(policy, str) or policy.split(":")[0] not in RESTART_POLICIES:
        err("restart_policy", policy, f"one of {', '.join(RESTART_POLICIES)} (on-failure:N allowed).")

    if not _is_positive(conf.get("ready_timeout")):
        err("ready_timeout", conf.get("ready_timeout"), "a positive number of seconds.")
    if not _is_positive(conf.get("ping_timeout")):
        err("ping_timeout", conf.get("ping_timeout"), "a positive number of seconds.")
    for comp in COMPONENTS:
        section = conf.get(comp)
        if not isinstance(section, dict):
            err(comp, section, "a mapping; see pillar.example.")
            continue
        for key in ("image", "tag"):
            value = section.get(key)
            if not isinstance(value, str) or not value.strip():
                hint = " Quote it in YAML (e.g. tag: '2.1')." if isinstance(value, (int, float)) else ""
                err(f"{comp}:{key}", value, f"a non-empty string.{hint}")
        if "port" in section and not _is_port(section["port"]):
            err(f"{comp}:port", section["port"], "an integer from 1 to 65535.")
        for key in ("env", "options"):
            value = section.get(key, {})
            if not isinstance(value, dict):
                err(f"{comp}:{key}", value, "a mapping (name: value).")
            elif key == "env":
                for name, val in value.items():
                    if not isinstance(val, (str, int, float, bool)):
                        err(f"{comp}:env:{name}", val, "a scalar (string or number).")
    sensor = conf.get("sensor") if isinstance(conf.get("sensor"), dict) else {}
    freq = sensor.get("frequency_ms")
    if not (isinstance(freq, int) and not isinstance(freq, bool) and freq >= 10):
        err("sensor:frequency_ms", freq, "an integer number of milliseconds, at least 10 (1000 = 1 Hz).")
    formula = conf.get("formula") if isinstance(conf.get("formula"), dict) else {}
    if not _is_positive(formula.get("cpu_error_threshold")):
        err("formula:cpu_error_threshold", formula.get("cpu_error_threshold"), "a positive number of Watts.")
    influxdb = conf.get("influxdb") if isinstance(conf.get("influxdb"), dict) else {}
    version = influxdb.get("version")
    if version not in (1, 2) or isinstance(version, bool):
        err("influxdb:version", version, "1 (InfluxDB 1.x) or 2 (InfluxDB 2.x).")
    if not _is_duration(influxdb.get("retention")):
        err("influxdb:retention", influxdb.get("retention"), "an InfluxDB duration such as 30d, 12w or INF.")
    if version == 2:
        for key, fix in (("org", "the organisation name"), ("token", "a secret admin token")):
            if not isinstance(influxdb.get(key), str) or not influxdb.get(key):
                err(f"influxdb:{key}", influxdb.get(key), f"{fix}, required with influxdb:version 2.")
        password = influxdb.get("password")
        if not isinstance(password, str) or len(password) < 8:
            err("influxdb:password", password, "a password of at least 8 characters, required with "
                "influxdb:version 2.")
    grafana = conf.get("grafana") if isinstance(conf.get("grafana"), dict) else {}
    if not isinstance(grafana.get("enabled"), bool):
        err("grafana:enabled", grafana.get("enabled"), "true or false.")
    elif grafana.get("enabled"):
        password = grafana.get("admin_password")
        if not isinstance(password, str) or not password or password == "admin":
            err("grafana:admin_password", password, "set a secret admin password (not 'admin'), or set "
                "energy:grafana:enabled: false.")
    heal = conf.get("heal") if isinstance(conf.get("heal"), dict) else {}
    components = heal.get("components")
    if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
        err("heal:components", components, f"a list of components among {', '.join(COMPONENTS)}.")
    elif not set(components) <= set(COMPONENTS):
        unknown = ", ".join(sorted(set(components) - set(COMPONENTS)))
        err("heal:components", components, f"unknown component(s) {unknown}; the components are "
            f"{', '.join(COMPONENTS)}.")
    for key in ("grace_seconds", "max_backlog", "max_age_seconds", "timeout"):
        if not _is_positive(heal.get(key)):
            err(f"heal:{key}", heal.get(key), "a positive number.")
    schedule = heal.get("schedule") if isinstance(heal.get("schedule"), dict) else {}
    if not isinstance(schedule.get("enabled"), bool):
        err("heal:schedule:enabled", schedule.get("enabled"), "true or false.")
    if not _is_positive(schedule.get("seconds")):
        err("heal:schedule:seconds", schedule.get("seconds"), "a positive number of seconds between runs.")
    splay = schedule.get("splay")
    if not (_is_positive(splay) or splay == 0):
        err("heal:schedule:splay", splay, "a number of seconds, 0 or more.")
    events = heal.get("events") if isinstance(heal.get("events"), dict) else {}
    for key in ("enabled", "restart_minion", "restart_master"):
        if not isinstance(events.get(key), bool):
            err(f"heal:events:{key}", events.get(key), "true or false.")
    clean = conf.get("clean") if isinstance(conf.get("clean"), dict) else {}
    if not isinstance(clean.get("purge_data"), bool):
        err("clean:purge_data", clean.get("purge_data"), "true or false.")
    return errors


def _is_positive(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _is_duration(value):
    return isinstance(value, str) and (value.upper() == "INF" or re.fullmatch(r"([0-9]+[wdhms])+", value) is not None)


def _grafana_enabled(conf):
    grafana = conf.get("grafana")
    return isinstance(grafana, dict) and grafana.get("enabled") is True


def check(conf):
    """Raise PlanError listing every problem of ``conf``."""
    errors = validate(conf)
    if errors:
        raise PlanError("invalid energy pillar:\n  - " + "\n  - ".join(errors))


def role_target(conf, role):
    """The compound target of a role (a list of ids becomes ``L@a,b``; unset roles use energy:control)."""
    target = (conf.get("roles") or {}).get(role)
    if target is None:
        target = "*" if role == "sensors" else conf.get("control")
    if isinstance(target, list):
        target = "L@" + ",".join(target)
    return target


def _container_name(minion, component, slug=None):
    safe = re.sub(r"[^a-zA-Z0-9_.-]", "-", minion)
    return f"energy-{safe}-{component}" + (f"-{slug}" if slug else "")


def _image(section):
    return f"{section['image']}:{section['tag']}"


def _labels(component, minion, cpu=None):
    labels = {"energy.component": component, "energy.minion": minion}
    if cpu is not None:
        labels["energy.cpu"] = cpu
    return labels


def _container(conf, component, minion, cpu=None, slug=None, run=None, **meta):
    """A container of the plan: ``run`` holds the docker_container.running kwargs, the rest is ours."""
    section = conf[component]
    run = dict(run or {})
    env = dict(section.get("env") or {})
    env.update(run.pop("environment", {}))
    run.update({
        "image": _image(section),
        "labels": _labels(component, minion, cpu),
        "restart_policy": conf["restart_policy"],
        "environment": {k: str(v) for k, v in sorted(env.items())},
    })
    run.update(copy.deepcopy(section.get("options") or {}))  # pillar has the last word
    container = {"name": _container_name(minion, component, slug), "component": component, "cpu": cpu,
                 "image_repo": section["image"], "image_tag": str(section["tag"]), "run": run}
    container.update(meta)
    return container


def sensor_config(conf, minion, cpu, entry):
    """The hwpc-sensor JSON config for one sensor minion (the real sensor's --config-file format)."""
    facts = entry["facts"]
    rapl_events = ["RAPL_ENERGY_PKG"] + (["RAPL_ENERGY_DRAM"] if "dram" in facts.get("rapl_domains", []) else [])
    events = conf["sensor"].get("events") or facts.get("pmu_events") or []
    cgroup_base = "/sys/fs/cgroup" if facts.get("cgroup_version") == 2 else "/sys/fs/cgroup/perf_event"
    return {
        "name": minion,
        "verbose": False,
        "frequency": conf["sensor"]["frequency_ms"],
        "cgroup_basepath": cgroup_base,
        "output": {"type": "mongodb", "uri": entry["mongo_uri"], "database": entry["database"],
                   "collection": entry["collection"]},
        "system": {"rapl": {"events": rapl_events, "monitoring_type": "MONITOR_ONE_CPU_PER_SOCKET"},
                   "msr": {"events": ["TSC", "APERF", "MPERF"]}},
        "container": {"core": {"events": list(events)}},
    }


def _influxdb_output(conf, entry):
    """SmartWatts output arguments: `influxdb` (1.x, SmartWatts 2.1) or `influxdb2` (2.x, SmartWatts >= 2.2).

    The `scope` tag keeps cpu and dram series apart (without it they overwrite each other)."""
    influxdb = conf["influxdb"]
    v2 = influxdb["version"] == 2
    args = ["--output", "influxdb2" if v2 else "influxdb", "--model", "PowerReport", "--name", "pusher_power",
            "--uri", f"http://{entry['influxdb_address']}" if v2 else entry["influxdb_address"],
            "--port", str(entry["influxdb_port"]), "--db", entry["influxdb_database"], "--tags", "scope,socket"]
    if v2:
        args += ["--org", influxdb["org"], "--token", influxdb["token"]]
    return args


def formula_command(conf, cpu, entry):
    """SmartWatts arguments for one CPU name (same for the upstream image and the test image)."""
    facts = entry["facts"]
    formula = conf["formula"]
    args = [
        "--verbose" if formula.get("verbose") else None,
        "--stream",
        "--input", "mongodb", "--model", "HWPCReport", "--name", "puller",
        "--uri", entry["mongo_uri"], "--db", entry["database"], "--collection", entry["collection"],
        *_influxdb_output(conf, entry),
        "--cpu-base-freq", str(facts.get("cpu_base_freq_mhz") or formula["default_base_freq_mhz"]),
        "--cpu-error-threshold", str(formula["cpu_error_threshold"]),
        "--sensor-reports-frequency", str(conf["sensor"]["frequency_ms"]),
    ]
    if facts.get("tdp_w"):
        args += ["--cpu-tdp", str(facts["tdp_w"])]
    if "dram" not in facts.get("rapl_domains", []):
        args.append("--disable-dram-formula")
    args += [str(a) for a in formula.get("extra_args") or []]
    return [a for a in args if a is not None]


def build_plan(conf, role_facts):
    """
    The whole deployment from a validated configuration and the mine's facts (pure).

    ``role_facts`` maps each role to ``{minion id: energy facts}`` of the minions its target
    matches. Returns ``{"cpus": {cpu_name: {...}}, "hosts": {minion: {"containers": [...],
    "sensor_configs": {...}}}, "grafana": id or None}``.
    """
    sensors = role_facts.get("sensors") or {}
    cpus = {m: f["cpu_name"] for m, f in sensors.items() if f.get("cpu_name")}
    roles = {role: sorted(role_facts.get(role) or {}) for role in ROLES if role != "sensors"}
    if not _grafana_enabled(conf):
        roles["grafana"] = []
    placed = placement(cpus, roles)
    address = {}
    for members in role_facts.values():
        for minion, facts in members.items():
            if facts.get("address"):
                address[minion] = facts["address"]
            else:
                address.setdefault(minion, minion)
    slugs = cpu_slugs(placed["cpus"])
    plan = {"cpus": {}, "hosts": {}, "grafana": placed["grafana"]}

    def host(minion):
        return plan["hosts"].setdefault(minion, {"containers": [], "sensor_configs": {}})

    for cpu, entry in sorted(placed["cpus"].items()):
        slug = slugs[cpu]
        representative = sensors[entry["sensors"][0]]
        if not (conf["sensor"].get("events") or representative.get("pmu_events")):
            raise PlanError(
                f"energy:roles:sensors: CPU name {cpu!r} (minions {', '.join(entry['sensors'])}) has no usable "
                "PMU events (a virtual machine, or a CPU the grain does not know), so SmartWatts could "
                "never attribute power to containers. Fix: leave these minions out of energy:roles:sensors, "
                "or give the events in energy:sensor:events or energy:facts:pmu_events."
            )
        mongo_port = conf["mongo"]["port"] + entry["slots"]["mongo"]
        influx_port = conf["influxdb"]["port"] + entry["slots"]["influxdb"]
        info = {
            "slug": slug,
            "sensors": entry["sensors"],
            "mongo": entry["mongo"],
            "formula": entry["formula"],
            "influxdb": entry["influxdb"],
            # facts of the first sensor host stand for the CPU name (same model, same facts)
            "facts": representative,
            "mongo_uri": f"mongodb://{address[entry['mongo']]}:{mongo_port}",
            "mongo_port": mongo_port,
            "database": f"sensors_{slug}",
            "collection": "hwpc",
            "influxdb_address": address[entry["influxdb"]],
            "influxdb_port": influx_port,
            "influxdb_url": f"http://{address[entry['influxdb']]}:{influx_port}",
            "influxdb_database": f"power_{slug}",
        }
        plan["cpus"][cpu] = info

        host(entry["mongo"])["containers"].append(_container(
            conf, "mongo", entry["mongo"], cpu, slug,
            run={"port_bindings": [f"{address[entry['mongo']]}:{mongo_port}:27017"],
                 "binds": [f"{_container_name(entry['mongo'], 'mongo', slug)}:/data/db"]},
            volume=_container_name(entry["mongo"], "mongo", slug),
            port=mongo_port, address=address[entry["mongo"]],
            health={"mongo": f"{address[entry['mongo']]}:{mongo_port}"},
        ))
        influx_volume = _container_name(entry["influxdb"], "influxdb", slug)
        influx_run = {"port_bindings": [f"{address[entry['influxdb']]}:{influx_port}:8086"],
                      "binds": [f"{influx_volume}:/var/lib/influxdb"]}
        if conf["influxdb"]["version"] == 2:
            influx_run["binds"] = [f"{influx_volume}:/var/lib/influxdb2"]
            influx_run["environment"] = {  # first start only: the upstream image's setup mode
                "DOCKER_INFLUXDB_INIT_MODE": "setup", "DOCKER_INFLUXDB_INIT_USERNAME": "energy",
                "DOCKER_INFLUXDB_INIT_PASSWORD": conf["influxdb"]["password"],
                "DOCKER_INFLUXDB_INIT_ORG": conf["influxdb"]["org"],
                "DOCKER_INFLUXDB_INIT_BUCKET": info["influxdb_database"],
                "DOCKER_INFLUXDB_INIT_RETENTION": "0s" if conf["influxdb"]["retention"].upper() == "INF"
                else conf["influxdb"]["retention"],
                "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN": conf["influxdb"]["token"],
            }
        host(entry["influxdb"])["containers"].append(_container(
            conf, "influxdb", entry["influxdb"], cpu, slug, run=influx_run, volume=influx_volume,
            port=influx_port, address=address[entry["influxdb"]], database=info["influxdb_database"],
            url=info["influxdb_url"], version=conf["influxdb"]["version"], retention=conf["influxdb"]["retention"],
            ready_timeout=conf["ready_timeout"], health={"http": f"{info['influxdb_url']}/ping"},
        ))
        for minion in entry["sensors"]:
            config_file = f"{conf['config_dir']}/{_container_name(minion, 'sensor')}.json"
            host(minion)["sensor_configs"][config_file] = sensor_config(conf, minion, cpu, info)
            host(minion)["containers"].append(_container(
                conf, "sensor", minion, cpu, None,
                run={"command": ["--config-file", "/etc/hwpc-sensor/config.json"],
                     "binds": [f"{config_file}:/etc/hwpc-sensor/config.json:ro", "/sys:/sys",
                               "/var/lib/docker/containers:/var/lib/docker/containers:ro"],
                     "network_mode": "host", "pid_mode": "host", "privileged": True},
                config_file=config_file,
                health={"fresh": {"url": info["influxdb_url"], "database": info["influxdb_database"],
                                  "sensor": minion, "max_age": conf["heal"]["max_age_seconds"]}},
            ))
        host(entry["formula"])["containers"].append(_container(
            conf, "formula", entry["formula"], cpu, slug,
            run={"command": formula_command(conf, cpu, info), "network_mode": "host"},
            mongo_uri=info["mongo_uri"], influxdb_url=info["influxdb_url"], ready_timeout=conf["ready_timeout"],
            health={"backlog": {"uri": info["mongo_uri"], "database": info["database"],
                                "collection": info["collection"], "max": conf["heal"]["max_backlog"]}},
        ))
    if placed["grafana"]:
        grafana = placed["grafana"]
        port = conf["grafana"]["port"]
        provisioning = f"{conf['config_dir']}/{_container_name(grafana, 'grafana')}"
        host(grafana)["containers"].append(_container(
            conf, "grafana", grafana, None, None,
            run={"port_bindings": [f"{address[grafana]}:{port}:3000"],
                 "binds": [f"{_container_name(grafana, 'grafana')}:/var/lib/grafana",
                           f"{provisioning}/provisioning:/etc/grafana/provisioning:ro",
                           f"{provisioning}/dashboards:/etc/grafana/dashboards:ro"],
                 "environment": {"GF_SECURITY_ADMIN_PASSWORD": conf["grafana"]["admin_password"]}},
            volume=_container_name(grafana, "grafana"), port=port, address=address[grafana],
            url=f"http://{address[grafana]}:{port}", provisioning_dir=provisioning,
            health={"http": f"http://{address[grafana]}:{port}/api/health"},
            provisioning={"provisioning/datasources/energy.yaml": grafana_datasources(conf, plan["cpus"]),
                          "provisioning/dashboards/energy.yaml": GRAFANA_DASHBOARD_PROVIDER},
        ))
    return plan


GRAFANA_DASHBOARD_PROVIDER = {
    "apiVersion": 1,
    "providers": [{"name": "energy", "folder": "Energy", "type": "file", "disableDeletion": True,
                   "allowUiUpdates": False, "options": {"path": "/etc/grafana/dashboards"}}],
}


def datasource_uid(slug):
    """Grafana uids are at most 40 characters: a stable hash of the CPU slug."""
    return "energy-" + hashlib.sha1(slug.encode()).hexdigest()[:12]


def grafana_datasources(conf, cpus):
    """Grafana provisioning: one InfluxQL datasource per CPU name, on the InfluxDB the plan chose."""
    datasources = []
    for cpu, info in sorted(cpus.items()):
        source = {"name": f"energy {cpu}", "uid": datasource_uid(info["slug"]), "type": "influxdb",
                  "access": "proxy", "url": info["influxdb_url"], "editable": False,
                  "jsonData": {"dbName": info["influxdb_database"], "httpMode": "GET"}}
        if conf["influxdb"]["version"] == 2:  # InfluxQL on 2.x: the bucket's DBRP mapping + token
            source["jsonData"]["httpHeaderName1"] = "Authorization"
            source["secureJsonData"] = {"httpHeaderValue1": f"Token {conf['influxdb']['token']}"}
        datasources.append(source)
    return {"apiVersion": 1, "datasources": datasources}


# --------------------------------------------------------------------------- Salt functions


def facts():
    """
    This minion's energy facts as the mine publishes them: the ``energy`` grain, overridden by
    pillar ``energy:facts``, plus the ``address`` other minions reach it on.

    CLI Example:

    .. code-block:: bash

        salt-call energy.facts
    """
    result = dict(__grains__.get("energy") or {})
    pillar = __pillar__.get("energy")
    overrides = (pillar.get("facts") if isinstance(pillar, dict) else None) or {}
    result.update({k: v for k, v in overrides.items() if k in FACT_KEYS})
    if not result.get("address"):
        candidates = [ip for ip in (__grains__.get("fqdn_ip4") or []) + (__grains__.get("ipv4") or [])
                      if not ip.startswith("127.")]
        result["address"] = candidates[0] if candidates else "127.0.0.1"
    return result


def _defaults():
    text = __salt__["cp.get_file_str"]("salt://energy/defaults.yaml")
    if not text:
        raise CommandExecutionError("salt://energy/defaults.yaml not found: is the energy formula on the file roots?")
    return yaml.safe_load(text)["energy"]


def config(defaults=None):
    """
    The merged configuration: ``defaults.yaml`` overridden by pillar ``energy``, validated.

    CLI Example:

    .. code-block:: bash

        salt-call energy.config
    """
    import salt.utils.dictupdate  # pylint: disable=import-outside-toplevel

    merged = copy.deepcopy(defaults if defaults is not None else _defaults())
    # __pillar__, not pillar.get: since Salt 3008 pillar.get masks values when a module calls it
    pillar = __pillar__.get("energy", {})
    if pillar is not None and not isinstance(pillar, dict):
        raise CommandExecutionError(f"invalid energy pillar:\n  - energy: must be a mapping, got {pillar!r}")
    merged = salt.utils.dictupdate.merge(merged, pillar or {}, merge_lists=False)
    try:
        check(merged)
    except PlanError as exc:
        raise CommandExecutionError(str(exc)) from None
    return merged


def _role_facts(conf):
    result = {}
    for role in ROLES:
        target = role_target(conf, role)
        if not target:
            result[role] = {}
            continue
        found = __salt__["mine.get"](target, MINE_FUNCTION, tgt_type="compound") or {}
        result[role] = {m: f for m, f in found.items() if isinstance(f, dict)}
    return result


def plan(conf=None):
    """
    The deployment plan computed from the mine: which minion runs which containers.

    Every node computes the same plan from the same mine data. Raises with a message naming the
    pillar key when the configuration or the placement is invalid.

    CLI Example:

    .. code-block:: bash

        salt-call energy.plan
    """
    conf = conf if conf is not None else config()
    try:
        check(conf)
        return build_plan(conf, _role_facts(conf))
    except PlanError as exc:
        raise CommandExecutionError(str(exc)) from None


def summary(conf=None):
    """
    Which minion runs which containers, per CPU name (a short view of ``energy.plan``).

    CLI Example:

    .. code-block:: bash

        salt-call energy.summary
    """
    full = plan(conf)
    return {
        "cpus": {cpu: {k: info[k] for k in ("sensors", "mongo", "formula", "influxdb", "mongo_uri",
                                             "influxdb_url", "influxdb_database")}
                 for cpu, info in full["cpus"].items()},
        "hosts": {minion: sorted(c["name"] for c in h["containers"]) for minion, h in full["hosts"].items()},
        "grafana": full["grafana"],
        "grafana_url": next((c["url"] for h in full["hosts"].values() for c in h["containers"]
                             if c["component"] == "grafana"), None),
    }


CLEAN_ORDER = ("grafana", "formula", "influxdb", "sensor", "mongo")


def deployed(conf=None):
    """
    What the energy formula has deployed on this minion, in removal order: the containers labelled
    ``energy.minion=<this id>``, the data volumes and the sensor config files.

    CLI Example:

    .. code-block:: bash

        salt-call energy.deployed
    """
    import glob  # pylint: disable=import-outside-toplevel

    conf = conf if conf is not None else config()
    minion = __opts__["id"]
    found = __salt__["docker.ps"](all=True, filters={"label": [f"energy.minion={minion}"]}) or {}
    containers = []
    for info in found.values():
        if not isinstance(info, dict):
            continue
        labels = info.get("Labels") or {}
        name = (info.get("Names") or ["?"])[0].lstrip("/")
        containers.append({"name": name, "component": labels.get("energy.component", "unknown"),
                           "cpu": labels.get("energy.cpu")})
    rank = {component: i for i, component in enumerate(CLEAN_ORDER)}
    containers.sort(key=lambda c: (rank.get(c["component"], len(rank)), c["name"]))
    prefixes = tuple(_container_name(minion, component) + "-" for component in ("mongo", "influxdb"))
    grafana_volume = _container_name(minion, "grafana")
    volumes = (__salt__["docker.volumes"]() or {}).get("Volumes") or []
    names = sorted(v["Name"] for v in volumes
                   if v.get("Name", "").startswith(prefixes) or v.get("Name") == grafana_volume)
    config_file = f"{conf['config_dir']}/{_container_name(minion, 'sensor')}.json"
    return {"containers": containers, "volumes": names, "config_files": sorted(glob.glob(config_file))}


def hostname_to_influx(conf=None):
    """
    For each monitored minion: the InfluxDB holding its containers' power, from the mine.

    Returns ``{minion: {"url", "database", "cpu", "measurement", "sensor"}}``; a container's
    power is ``SELECT power FROM power_consumption WHERE sensor = '<minion>' AND
    target = '<container name>' AND scope = 'cpu'``. Jinja helper: ``energy/influx.jinja``.

    CLI Example:

    .. code-block:: bash

        salt-call energy.hostname_to_influx
    """
    return influx_by_minion(plan(conf))


def influx_by_minion(full_plan):
    """hostname_to_influx from a plan (pure)."""
    return {
        minion: {"url": info["influxdb_url"], "database": info["influxdb_database"], "cpu": cpu,
                 "measurement": "power_consumption", "sensor": minion}
        for cpu, info in sorted(full_plan["cpus"].items())
        for minion in info["sensors"]
    }


# --------------------------------------------------------------------------- event-driven healing

ENGINE_NAME = "energy-docker-events"
EVENT_TAG = "energy/docker"  # the engine fires energy/docker/<Action>; the reactor listens to energy/docker/*
REACTOR_SLS = "salt://energy/reactor/heal.sls"


def _engine_name(entry):
    """The name of an ``engines`` entry: a bare name, or the key of a one-key mapping."""
    if isinstance(entry, str):
        return entry
    return next(iter(entry), None) if isinstance(entry, dict) else None


def engine_config(minion, main_engines=None):
    """The minion config (minion.d/energy-events.conf) running the docker_events engine (pure).

    Only die and destroy of containers labelled with this minion's id reach the master; the
    reactor also drops the temporary containers docker_container.running makes (random names).
    Salt replaces a top-level key of the main config with the same key of minion.d files, so the
    engines of the main config file (``main_engines``) are carried over, or they would stop."""
    if isinstance(main_engines, dict):
        main_engines = [{k: v} for k, v in main_engines.items()]
    kept = [e for e in main_engines or [] if _engine_name(e) != ENGINE_NAME]
    return {"engines": kept + [{ENGINE_NAME: {
        "engine_module": "docker_events",
        "tag": EVENT_TAG,
        "filters": {"type": ["container"], "event": ["die", "destroy"], "label": [f"energy.minion={minion}"]},
    }}]}


def _main_engines():
    """The ``engines`` of the minion's main config file (not of its minion.d files)."""
    try:
        with open(__opts__["conf_file"], encoding="utf-8") as handle:
            main = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError):
        return []
    return main.get("engines") if isinstance(main, dict) else []


def engine_content():
    """The text of minion.d/energy-events.conf for this minion.

    CLI Example:

    .. code-block:: bash

        salt-call energy.engine_content
    """
    return ("# managed by the energy formula (energy.heal): the docker_events engine; the engines of the\n"
            "# main config are kept here, as Salt would otherwise replace them with this list\n"
            + yaml.safe_dump(engine_config(__opts__["id"], _main_engines()), default_flow_style=False))


def engine_file():
    """Where this minion's engine config lives: minion.d/energy-events.conf next to its config file.

    CLI Example:

    .. code-block:: bash

        salt-call energy.engine_file
    """
    import os  # pylint: disable=import-outside-toplevel

    return os.path.join(os.path.dirname(__opts__["conf_file"]), "minion.d", "energy-events.conf")


def engine_loaded():
    """True when the running salt-minion started the docker_events engine of the formula."""
    return any(_engine_name(e) == ENGINE_NAME for e in __opts__.get("engines") or [])


def _maintenance_file():
    import os  # pylint: disable=import-outside-toplevel

    return os.path.join(__opts__["cachedir"], "energy", "maintenance.json")


def _read_maintenance(now):
    """{what: {"reason", "since", "until"}} without the windows that ended."""
    import json  # pylint: disable=import-outside-toplevel

    try:
        with open(_maintenance_file(), encoding="utf-8") as handle:
            entries = json.load(handle)
    except (OSError, ValueError):
        return {}
    return {what: e for what, e in entries.items() if isinstance(e, dict) and (e.get("until") or now + 1) > now}


def held_reason(entries, name, component, minion):
    """Why container ``name`` of ``component`` is left alone, or '' (pure).

    ``entries`` are the maintenance windows: keyed ``all``, a component or a container name."""
    import time  # pylint: disable=import-outside-toplevel

    for what in (name, component, "all"):
        entry = entries.get(what)
        if entry:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["since"]))
            until = (" until " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["until"]))
                     if entry.get("until") else "")
            return (f"maintenance on {what} since {since}{until}" + (f" ({entry['reason']})" if entry.get("reason") else "")
                    + f"; resume with: salt {minion} energy.maintenance off {what}")
    return ""


def held(name, component):
    """Why the formula leaves container ``name`` alone (a maintenance window), or ''.

    CLI Example:

    .. code-block:: bash

        salt-call energy.held energy-node-a-sensor sensor
    """
    import time  # pylint: disable=import-outside-toplevel

    return held_reason(_read_maintenance(time.time()), name, component, __opts__["id"])


def maintenance(action="status", what="all", reason="", hours=None):
    """
    The maintenance switch: while it is on, nothing of the formula touches the containers it
    covers (the reactor, the heal schedule, energy.heal and the component states leave them as
    they are, and say so), so a deliberate ``docker stop`` stays stopped.

    action
        ``on``, ``off`` or ``status`` (the default).
    what
        ``all`` (the default), a component (``sensor``, ``mongo``, ``formula``, ``influxdb``,
        ``grafana``) or a container name. ``off all`` ends every window on this minion.
    reason
        Shown in every run that leaves a container alone, and in the event.
    hours
        End the window by itself after this many hours (default: until ``off``).

    Fires ``energy/maintenance/on`` or ``energy/maintenance/off``.

    CLI Example:

    .. code-block:: bash

        salt node-a energy.maintenance on formula reason="moving the disk" hours=2
        salt node-a energy.maintenance off formula
        salt '*' energy.maintenance
    """
    import json  # pylint: disable=import-outside-toplevel
    import os  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    now = time.time()
    entries = _read_maintenance(now)
    if isinstance(action, bool):  # the CLI's YAML reads a bare on/off as true/false
        action = "on" if action else "off"
    action = str(action).lower()
    what = str(what)
    if action == "status":
        return entries
    if action not in ("on", "off"):
        raise CommandExecutionError(f"energy.maintenance: bad action {action!r}. Fix: on, off or status.")
    if what != "all" and what not in COMPONENTS and not what.startswith("energy-"):
        raise CommandExecutionError(
            f"energy.maintenance: bad target {what!r}. Fix: all, a component ({', '.join(COMPONENTS)}) "
            "or a container name of the stack (energy-...; see salt-call energy.deployed).")
    if action == "on":
        if hours is not None and not _is_positive(hours):
            raise CommandExecutionError(f"energy.maintenance: bad hours {hours!r}. Fix: a positive number.")
        entries[what] = {"reason": str(reason or ""), "since": now,
                         "until": now + float(hours) * 3600 if hours is not None else None}
        ended = []
    else:
        ended = sorted(entries) if what == "all" else [w for w in (what,) if w in entries]
        for key in ended:
            del entries[key]
    path = _maintenance_file()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(entries, handle)
    os.replace(path + ".tmp", path)
    event = {"minion": __opts__["id"], "what": what, "reason": str(reason or ""), "ended": ended}
    log.warning("energy maintenance %s for %s on %s%s", action, what, __opts__["id"],
                f" ({reason})" if reason else "")
    __salt__["event.send"](f"energy/maintenance/{action}", event)
    return entries


def react(name, action="die", **kwargs):
    """
    What the master's reactor runs when the docker_events engine reports that container ``name``
    died or was removed: if it is a container of this minion's plan, not in maintenance, and event
    healing is on here, recreate it with ``energy.healthy`` (which logs it and fires
    ``energy/heal/<component>``). Several events for one container (``docker rm -f`` sends die and
    destroy) give one recreation: a second job finds the first holding the container's lock, or
    the container healthy again.

    CLI Example:

    .. code-block:: bash

        salt-call energy.react energy-node-a-sensor die
    """
    import fcntl  # pylint: disable=import-outside-toplevel
    import os  # pylint: disable=import-outside-toplevel

    import salt.utils.state  # pylint: disable=import-outside-toplevel

    def skip(comment):
        log.info("energy react: %s event for %s: %s", action, name, comment)
        return {"result": True, "changes": {}, "comment": comment}

    if not os.path.exists(engine_file()):
        return skip(f"event-driven healing is off on this minion ({engine_file()} is absent)")
    conf = config()
    if not conf["heal"]["events"]["enabled"]:
        return skip("energy:heal:events:enabled is false")
    mine = plan(conf)["hosts"].get(__opts__["id"], {"containers": []})
    spec = next((c for c in mine["containers"] if c["name"] == name), None)
    if spec is None:
        return skip("not a container of this minion's plan: left alone")
    if spec["component"] not in conf["heal"]["components"]:
        return skip(f"{spec['component']} is not in energy:heal:components: left alone")
    reason = held(name, spec["component"])
    if reason:
        return skip(f"left alone: {reason}")
    lock_path = os.path.join(__opts__["cachedir"], "energy", f"react-{name}.lock")
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "w", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return skip("another job is recreating it already")
        ret = __salt__["state.single"](
            "energy.healthy", name=name, component=spec["component"], run=spec["run"], probe=spec.get("health"),
            grace=conf["heal"]["grace_seconds"], timeout=conf["heal"]["timeout"],
            trigger=f"docker {action} event", queue=True)
    if not salt.utils.state.check_result(ret):
        __context__["retcode"] = 1
    return ret
