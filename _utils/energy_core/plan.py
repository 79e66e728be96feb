"""The whole deployment plan, from a validated configuration and the mine's facts (pure).

``build(conf, role_facts)`` returns::

    {"cpus": {cpu_name: {"slug", "sensors", "mongo", "formula", "influxdb", "facts", "mongo_uri",
                         "mongo_address", "mongo_port", "database", "collection", "influxdb_address",
                         "influxdb_port", "influxdb_url", "influxdb_database"}},
     "hosts": {minion: {"containers": [container, ...]}},    # see components.CONTAINER_KEYS
     "grafana": minion id or None}

Every node computes the same plan from the same mine data, whatever order it comes in.
"""

from . import components, names, schema
from .placement import placement
from .schema import PlanError


def _addresses(role_facts):
    address = {}
    for members in role_facts.values():
        for minion, facts in members.items():
            if facts.get("address"):
                address[minion] = facts["address"]
            else:
                address.setdefault(minion, minion)
    return address


def _cpu_info(conf, cpu, entry, slug, representative, address):
    mongo_port = conf["mongo"]["port"] + entry["slots"]["mongo"]
    influx_port = conf["influxdb"]["port"] + entry["slots"]["influxdb"]
    return {
        "slug": slug,
        "sensors": entry["sensors"],
        "mongo": entry["mongo"],
        "formula": entry["formula"],
        "influxdb": entry["influxdb"],
        # facts of the first sensor host stand for the CPU name (same model, same facts)
        "facts": representative,
        "mongo_address": address[entry["mongo"]],
        "mongo_port": mongo_port,
        "mongo_uri": f"mongodb://{address[entry['mongo']]}:{mongo_port}",
        "database": names.sensor_database(slug),
        "collection": "hwpc",
        "influxdb_address": address[entry["influxdb"]],
        "influxdb_port": influx_port,
        "influxdb_url": f"http://{address[entry['influxdb']]}:{influx_port}",
        "influxdb_database": names.power_database(slug),
    }


def _check_events(conf, cpu, entry, representative):
    if not (conf["sensor"].get("events") or representative.get("pmu_events")):
        raise PlanError(
            f"energy:roles:sensors: CPU name {cpu!r} (minions {', '.join(entry['sensors'])}) has no usable "
            "PMU events (a virtual machine, or a CPU the grain does not know), so SmartWatts could "
            "never attribute power to containers. Fix: leave these minions out of energy:roles:sensors, "
            "or give the events in energy:sensor:events or energy:facts:pmu_events."
        )


def build(conf, role_facts):
    """The plan (see the module's docstring). ``role_facts`` maps each role to ``{minion id:
    energy facts}`` of the minions its target matches."""
    sensors = role_facts.get("sensors") or {}
    cpus = {m: f["cpu_name"] for m, f in sensors.items() if f.get("cpu_name")}
    roles = {role: sorted(role_facts.get(role) or {}) for role in names.ROLES if role != "sensors"}
    if not schema.grafana_enabled(conf):
        roles["grafana"] = []
    placed = placement(cpus, roles)
    address = _addresses(role_facts)
    slugs = names.cpu_slugs(placed["cpus"])
    result = {"cpus": {}, "hosts": {}, "grafana": placed["grafana"]}

    def add(entry):
        result["hosts"].setdefault(entry["minion"], {"containers": []})["containers"].append(entry)

    for cpu, entry in sorted(placed["cpus"].items()):
        representative = sensors[entry["sensors"][0]]
        _check_events(conf, cpu, entry, representative)
        info = _cpu_info(conf, cpu, entry, slugs[cpu], representative, address)
        result["cpus"][cpu] = info
        add(components.mongo(conf, cpu, info))
        add(components.influxdb(conf, cpu, info))
        for minion in entry["sensors"]:
            add(components.sensor(conf, minion, cpu, info))
        add(components.formula(conf, cpu, info))
    if placed["grafana"]:
        add(components.grafana(conf, placed["grafana"], address[placed["grafana"]], result["cpus"]))
    return result


def node(full_plan, minion):
    """The part of the plan one minion deploys: ``{"containers": [...]}`` (empty when none)."""
    return full_plan["hosts"].get(minion, {"containers": []})


def influx_by_minion(full_plan):
    """For each sensor minion: the InfluxDB holding its containers' power."""
    return {
        minion: {"url": info["influxdb_url"], "database": info["influxdb_database"], "cpu": cpu,
                 "measurement": "power_consumption", "sensor": minion}
        for cpu, info in sorted(full_plan["cpus"].items())
        for minion in info["sensors"]
    }


def summary(full_plan):
    """Which minion runs which containers, per CPU name: a short view of the plan."""
    return {
        "cpus": {cpu: {k: info[k] for k in ("sensors", "mongo", "formula", "influxdb", "mongo_uri",
                                             "influxdb_url", "influxdb_database")}
                 for cpu, info in full_plan["cpus"].items()},
        "hosts": {minion: sorted(c["name"] for c in h["containers"]) for minion, h in full_plan["hosts"].items()},
        "grafana": full_plan["grafana"],
        "grafana_url": next((c["url"] for h in full_plan["hosts"].values() for c in h["containers"]
                             if c["component"] == "grafana"), None),
    }
