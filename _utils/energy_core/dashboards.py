"""The comparison dashboard: clusters and CPU names side by side on the same measures, built from
the plan (one query per CPU name, each on that CPU name's datasource), with a header that says
whether their sensor configurations are identical (mode common) or differ (mode best), and how."""

from . import events, experiment, names

UID = "energy-compare"
MIXED = {"type": "datasource", "uid": "-- Mixed --"}
# every query: the CPU package scope of SmartWatts' output; rapl is the measured package power,
# global the model's estimate that the containers share
CONTAINERS = "\"scope\" = 'cpu' AND \"target\" != 'rapl' AND \"target\" != 'global'"
MEASURES = (
    ("Package power per machine (measured by RAPL)", "watt", "normal",
     "SELECT mean(\"power\") FROM \"power_consumption\" WHERE \"scope\" = 'cpu' AND \"target\" = 'rapl' AND "
     "$timeFilter GROUP BY time($__interval), \"sensor\" fill(none)", "$tag_sensor"),
    ("Power per container", "watt", "none",
     f"SELECT mean(\"power\") FROM \"power_consumption\" WHERE {CONTAINERS} AND $timeFilter "
     "GROUP BY time($__interval), \"sensor\", \"target\" fill(none)", "$tag_sensor / $tag_target"),
    ("Share of each container in its machine's power", "percent", "percent",
     f"SELECT mean(\"power\") FROM \"power_consumption\" WHERE {CONTAINERS} AND $timeFilter "
     "GROUP BY time($__interval), \"sensor\", \"target\" fill(none)", "$tag_sensor / $tag_target"),
    ("Energy over the time range (J)", "joule", None,
     f"SELECT integral(\"power\") FROM \"power_consumption\" WHERE {CONTAINERS} AND $timeFilter "
     "GROUP BY \"sensor\", \"target\"", "$tag_sensor / $tag_target"),
)


def _md(text):
    """A CPU name (mine data) as plain text in Markdown: no link, image or HTML comes of it."""
    return "".join("\\" + c if c in "\\`*_[]()<>!|$" else c for c in str(text))


def _roles(info):
    chosen = info["sensor"]
    table = {event: role for family in events.EVENTS_BY_ROLE.values() for role, event in family.items()}
    return [table.get(event, event) for event in chosen["core"]]


def header(cpus):
    """The text at the top: identical configurations, or how they differ."""
    modes = {info["sensor"]["mode"] for info in cpus.values()}
    lines = []
    if modes == {"common"}:
        sample = next(iter(cpus.values()))["sensor"] if cpus else {"core": [], "rapl": []}
        lines.append("**Identical configurations** (`energy:sensor:mode: common`): every CPU name compared reads the "
                     f"same event roles ({', '.join(_roles(next(iter(cpus.values())))) if cpus else 'none'}) and RAPL "
                     f"domains ({', '.join(sample['rapl'])}), at the same sensor frequency and with the same SmartWatts "
                     "parameters (each CPU's base frequency and TDP aside): the figures compare like with like.")
        for cpu, info in sorted(cpus.items()):
            if info["sensor"]["dropped_roles"]:
                lines.append(f"- {_md(cpu)}: left out {', '.join(info['sensor']['dropped_roles'])} to match the others")
    else:
        lines.append("**The configurations differ** (`energy:sensor:mode: best`): each CPU name reads the best events "
                     "its PMU has, so each figure is as accurate as it can be, but CPU names are not measured alike. "
                     "Set `energy:sensor:mode: common` to compare clusters.")
        for cpu, info in sorted(cpus.items()):
            lines.append(f"- {_md(cpu)}: {', '.join(_roles(info)) or 'no core event'}; "
                         f"DRAM {'measured' if info['sensor']['dram'] else 'not measured'}")
    return "\n".join(lines)


def _ref(i):
    return chr(ord("A") + i) if i < 26 else f"{chr(ord('A') + i // 26 - 1)}{chr(ord('A') + i % 26)}"


def _targets(sources, query, alias):
    return [{"refId": _ref(i), "datasource": {"type": "influxdb", "uid": source["uid"]},
             "rawQuery": True, "resultFormat": "time_series" if "time(" in query else "table",
             "alias": f"{alias} ({source['slug']})", "query": query}
            for i, source in enumerate(sources)]


def _panel(panel_id, title, unit, stacking, query, alias, sources, y):
    panel = {"id": panel_id, "type": "timeseries" if stacking else "bargauge", "title": title, "datasource": MIXED,
             "gridPos": {"x": 0 if panel_id % 2 == 0 else 12, "y": y, "w": 12, "h": 9},
             "fieldConfig": {"defaults": {"unit": unit, "min": 0}, "overrides": []},
             "options": {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True}},
             "targets": _targets(sources, query, alias)}
    if stacking:
        panel["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "line", "fillOpacity": 10,
                                                      "stacking": {"mode": stacking, "group": "A"}}
    else:
        panel["options"] = {"orientation": "horizontal", "displayMode": "gradient",
                            "reduceOptions": {"calcs": ["lastNotNull"], "values": True}}
    return panel


def comparison(cpus, sources=None):
    """The comparison dashboard (Grafana 10 JSON) for the plan's CPU names, one query per
    datasource (``components.datasources``: one per CPU name, or per machine)."""
    if sources is None:
        sources = [{"uid": names.datasource_uid(info["slug"]), "slug": info["slug"]} for _, info in sorted(cpus.items())]
    panels = [{"id": 1, "type": "text", "title": "What is compared", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 5},
               "options": {"mode": "markdown", "content": header(cpus)}}]
    for i, (title, unit, stacking, query, alias) in enumerate(MEASURES):
        panels.append(_panel(i + 2, title, unit, stacking, query, alias, sources, 5 + 9 * (i // 2)))
    return {"uid": UID, "title": "Energy: compare clusters and CPU names", "tags": ["energy", "powerapi"],
            "description": "The same measures for every CPU name, side by side (energy formula).",
            "timezone": "browser", "editable": False, "graphTooltip": 1, "schemaVersion": 38, "version": 1,
            "refresh": "10s", "time": {"from": "now-15m", "to": "now"}, "timepicker": {}, "links": [],
            "liveNow": False, "fiscalYearStartMonth": 0,
            # every InfluxDB holds every mark (salt-run energy.mark): the first datasource shows them
            "annotations": {"list": [experiment.annotation({"type": "influxdb", "uid": s["uid"]}) for s in sources[:1]]},
            "templating": {"list": []},
            "panels": panels}
