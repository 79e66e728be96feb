"""What the formula has deployed on a minion, read from Docker (the inverse of the plan):
containers by their labels, data volumes by their names. ``energy.clean`` removes these."""

from . import names


def containers(ps_result):
    """The stack's containers from ``docker.ps`` (``{id: {"Names", "Labels", ...}}``), in removal
    order (``names.CLEAN_ORDER``), each ``{"name", "component", "cpu"}``."""
    found = []
    for info in (ps_result or {}).values():
        if not isinstance(info, dict):
            continue
        labels = info.get("Labels") or {}
        found.append({"name": (info.get("Names") or ["?"])[0].lstrip("/"),
                      "component": labels.get(names.LABEL_COMPONENT, "unknown"),
                      "cpu": labels.get(names.LABEL_CPU)})
    rank = {component: i for i, component in enumerate(names.CLEAN_ORDER)}
    return sorted(found, key=lambda c: (rank.get(c["component"], len(rank)), c["name"]))


def volumes(minion, volume_names):
    """The data volumes of ``minion``'s MongoDBs, InfluxDBs and Grafana among ``volume_names``."""
    prefixes = tuple(names.container_name(minion, c) + "-" for c in ("mongo", "influxdb"))
    grafana = names.container_name(minion, "grafana")
    return sorted(v for v in volume_names if v.startswith(prefixes) or v == grafana)
