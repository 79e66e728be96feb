"""The deployment summary: the plan's topology (which machine runs which box, and what flows where),
what each minion really runs, and what differs between the two; drawn as text for a terminal, as
SVG (drawn here, no dependency) or as Graphviz DOT.

``planned(full_plan)`` is computed on a minion (it has the plan); ``combine`` runs on the master
with every minion's ``energy_inventory.live`` answer; ``text``, ``svg`` and ``dot`` draw what ``combine``
returns. Everything here is pure: no Salt, no Docker."""

import html

from . import names
from .sizing import human  # noqa: F401  (one way to print a size: the summary's and the sizing's)
from .stack import COMPONENTS as STAGES  # the data flow's order, left to right
TITLES = {"sensor": "hwpc-sensor", "mongo": "MongoDB", "formula": "SmartWatts", "influxdb": "InfluxDB",
          "grafana": "Grafana"}


def _published(container):
    url = container.get("url") or ""
    return url.split("//", 1)[-1] if url else None


def planned(full_plan):
    """The topology of the plan: ``{"strategy", "boxes": {name: box}, "edges": [[from, to, what]],
    "cpus": {cpu: [group names]}, "grafana"}``; a box is ``{"name", "component", "minion", "cpu",
    "published", "volume"}`` (a container of the plan)."""
    boxes = {}
    for minion, host in sorted(full_plan["hosts"].items()):
        for container in host["containers"]:
            boxes[container["name"]] = {"name": container["name"], "component": container["component"],
                                        "minion": minion, "cpu": container.get("cpu"),
                                        "published": _published(container), "volume": container.get("volume")}

    def find(component, minion, cpu=None, name=None):
        for box in boxes.values():
            if box["component"] == component and box["minion"] == minion and (name is None or box["name"] == name):
                if cpu is None or component not in ("mongo", "influxdb") or _serves(full_plan, box["name"], cpu):
                    return box["name"]
        return None

    strategy = full_plan.get("strategy", "per_cpu")
    edges = []
    grafana = find("grafana", full_plan["grafana"]) if full_plan.get("grafana") else None
    for group in full_plan.get("groups", []):
        cpu = group["cpu"]
        mongo = find("mongo", group["mongo"], cpu)
        influx = find("influxdb", group["influxdb"], cpu)
        formula = names.container_name(group["formula"], "formula", None if strategy == "dedicated" else group["name"])
        for minion in group["sensors"]:
            edges.append([find("sensor", minion), mongo, f"{group['database']}.{group['collection']}"])
        edges.append([mongo, formula, group["collection"]])
        edges.append([formula, influx, group["influxdb_database"]])
        if grafana:
            edges.append([influx, grafana, group["influxdb_database"]])
    unique = []
    for edge in edges:
        if edge not in unique and None not in edge[:2]:
            unique.append(edge)
    return {"strategy": strategy, "boxes": boxes, "edges": unique,
            "cpus": {cpu: list(info.get("groups") or [cpu]) for cpu, info in sorted(full_plan["cpus"].items())},
            "grafana": full_plan.get("grafana")}


def _serves(full_plan, container, cpu):
    return any(s["container"] == container and cpu in s["cpus"] for s in full_plan.get("stores", []))


def combine(topology, lives, expected=()):
    """What the summary shows: the plan's topology with each box's live state, a table per minion,
    and what differs.

    ``topology``: ``planned`` of one minion (None when no minion could compute the plan);
    ``lives``: ``{minion: energy_inventory.live answer}`` of the minions that answered (a string is an error
    the minion returned); ``expected``: the minions that should have answered (those with energy
    facts in the mine, and those the plan places containers on)."""
    topology = topology or {"strategy": None, "boxes": {}, "edges": [], "cpus": {}, "grafana": None}
    boxes = {name: dict(box, state="missing", health=None, maintenance=None, volume_bytes=None, live_published=None)
             for name, box in topology["boxes"].items()}
    minions, unplanned, errors = {}, [], {}
    for minion, live in sorted(lives.items()):
        if not isinstance(live, dict):
            errors[minion] = str(live)[:500]
            continue
        rows = []
        for container in live.get("containers", []):
            row = {"name": container["name"], "component": container.get("component"), "cpu": container.get("cpu"),
                   "state": container.get("state"), "health": container.get("health"),
                   "maintenance": container.get("maintenance"), "published": container.get("published"),
                   "volume": container.get("volume"), "volume_bytes": container.get("volume_bytes"),
                   "planned": container["name"] in boxes and boxes[container["name"]]["minion"] == minion}
            rows.append(row)
            if row["planned"]:
                boxes[row["name"]].update(state=row["state"], health=row["health"], maintenance=row["maintenance"],
                                          volume_bytes=row["volume_bytes"], live_published=row["published"])
            else:
                unplanned.append({"minion": minion, "name": row["name"], "component": row["component"],
                                  "state": row["state"]})
        minions[minion] = rows
    answered = set(minions)
    for box in boxes.values():
        if box["minion"] not in answered:
            box["state"] = "unknown"
        elif box["state"] == "missing":
            minions[box["minion"]].append({"name": box["name"], "component": box["component"], "cpu": box["cpu"],
                                           "state": "missing", "health": None, "maintenance": None,
                                           "published": box["published"], "volume": box["volume"],
                                           "volume_bytes": None, "planned": True})
    for rows in minions.values():
        rows.sort(key=lambda r: (STAGES.index(r["component"]) if r["component"] in STAGES else 9, r["name"]))
    silent = sorted((set(expected) | {b["minion"] for b in boxes.values()}) - answered)
    return {
        "strategy": topology["strategy"],
        "cpus": topology["cpus"],
        "boxes": boxes,
        "edges": topology["edges"],
        "minions": minions,
        "differences": {
            "missing": sorted(n for n, b in boxes.items() if b["state"] == "missing"),
            "not_running": sorted(n for n, b in boxes.items() if b["state"] not in ("running", "missing", "unknown")),
            "unplanned": sorted(unplanned, key=lambda u: (u["minion"], u["name"])),
            "no_answer": silent,
            "errors": errors,
        },
    }


def _status(box):
    if box["state"] != "running":
        return box["state"] or "?"
    if box.get("maintenance"):
        return "maintenance"
    health = box.get("health") or {}
    return health.get("status") or "running"


def _table(rows, columns):
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return lines


def _box_label(box):
    where = box["minion"] + (f" {box['live_published'] or box['published']}" if box.get("published") else "")
    return f"[{TITLES.get(box['component'], box['component'])} @ {where}: {_status(box)}]"


def _chains(summary):
    """Per CPU name, the paths sensor -> MongoDB -> SmartWatts -> InfluxDB -> Grafana, one per
    SmartWatts, with the sensors feeding it."""
    boxes, edges = summary["boxes"], summary["edges"]
    out = {}
    by_from = {}
    for frm, to, _what in edges:
        by_from.setdefault(frm, []).append(to)
    for name, box in sorted(boxes.items()):
        if box["component"] != "formula":
            continue
        mongo = next((f for f, t, _ in edges if t == name), None)
        sensors = sorted(f for f, t, _ in edges if t == mongo and boxes.get(f, {}).get("component") == "sensor"
                         and _feeds(summary, f, name))
        influx = next(iter(by_from.get(name, [])), None)
        grafana = next(iter(by_from.get(influx, [])), None) if influx else None
        out.setdefault(box["cpu"], []).append({"sensors": sensors, "mongo": mongo, "formula": name,
                                               "influxdb": influx, "grafana": grafana})
    return out


def _feeds(summary, sensor, formula):
    """Whether ``sensor`` writes the collection ``formula`` reads (shards share a MongoDB)."""
    written = {w for f, t, w in summary["edges"] if f == sensor}
    read = {w for f, t, w in summary["edges"] if t == formula}
    return any(w.endswith("." + r) for w in written for r in read)


def text(summary):
    """The summary for a terminal: the topology per CPU name, a table per minion, the differences."""
    boxes = summary["boxes"]
    lines = [f"energy stack, strategy {summary['strategy']}", "", "Topology (reports flow left to right):"]
    for cpu, chains in sorted(_chains(summary).items(), key=lambda kv: str(kv[0])):
        lines.append(f"  {cpu}")
        for chain in chains:
            feeders = [_box_label(boxes[s]) for s in chain["sensors"]]
            rest = [_box_label(boxes[n]) for n in (chain["mongo"], chain["formula"], chain["influxdb"],
                                                    chain["grafana"]) if n]
            pad = " " * 4
            for feeder in feeders:
                lines.append(pad + feeder + (" --+" if len(feeders) > 1 else " --"))
            arrow = pad + ("+" if len(feeders) > 1 else "") + "--> " + " --> ".join(rest)
            lines.append(arrow)
    if not boxes:
        lines.append("  (no plan: no minion could compute it)")
    for minion, rows in sorted(summary["minions"].items()):
        lines += ["", f"{minion}:"]
        if not rows:
            lines.append("  (no container of the stack)")
            continue
        table = [(r["name"], r["component"] or "?", r["cpu"] or "-", r["state"] or "?",
                  (r.get("health") or {}).get("status", "-") if r.get("health") else "-",
                  "yes" if r.get("maintenance") else "-", r["published"] or "-",
                  r["volume"] or "-", human(r.get("volume_bytes")) if r["volume"] else "-",
                  "" if r["planned"] else "UNPLANNED") for r in rows]
        lines += ["  " + line for line in _table(table, ("container", "component", "cpu", "state", "health",
                                                         "maintenance", "published", "volume", "size", ""))]
    diff = summary["differences"]
    lines += ["", "Plan vs reality:"]
    if not any(diff[k] for k in ("missing", "not_running", "unplanned", "no_answer", "errors")):
        lines.append("  every planned container runs, nothing unplanned")
    lines += [f"  missing: {n} (planned on {boxes[n]['minion']})" for n in diff["missing"]]
    lines += [f"  not running: {n} ({boxes[n]['state']})" for n in diff["not_running"]]
    lines += [f"  unplanned: {u['name']} on {u['minion']} ({u['state']})" for u in diff["unplanned"]]
    lines += [f"  did not answer: {m}" for m in diff["no_answer"]]
    lines += [f"  error from {m}: {e}" for m, e in sorted(diff["errors"].items())]
    return "\n".join(lines) + "\n"


def _columns(summary):
    """The boxes of each stage, in drawing order (by CPU name, then name)."""
    columns = {stage: [] for stage in STAGES}
    for name, box in sorted(summary["boxes"].items(), key=lambda kv: (str(kv[1]["cpu"]), kv[0])):
        if box["component"] in columns:
            columns[box["component"]].append(name)
    return columns


COLOURS = {"running": "#e6f4ea", "healthy": "#e6f4ea", "maintenance": "#fff4ce", "missing": "#fde7e9",
           "unknown": "#eeeeee"}


def svg(summary):
    """The topology as an SVG picture: a column per stage, a box per container (its machine, port and
    state), an arrow per flow."""
    columns = _columns(summary)
    width, height, gap_x, gap_y, left, top = 250, 58, 80, 22, 20, 60
    rows = max([len(c) for c in columns.values()] + [1])
    place = {}
    for x, stage in enumerate(STAGES):
        for y, name in enumerate(columns[stage]):
            offset = (rows - len(columns[stage])) * (height + gap_y) / 2.0
            place[name] = (left + x * (width + gap_x), top + offset + y * (height + gap_y))
    total_w = left * 2 + len(STAGES) * width + (len(STAGES) - 1) * gap_x
    total_h = top + rows * (height + gap_y) + 40
    esc = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
           f'viewBox="0 0 {total_w} {total_h}" font-family="sans-serif" font-size="12">',
           '<defs><marker id="arrow" markerWidth="10" markerHeight="8" refX="10" refY="4" orient="auto">'
           '<path d="M0,0 L10,4 L0,8 z" fill="#555"/></marker></defs>',
           f'<rect width="{total_w}" height="{total_h}" fill="white"/>',
           f'<text x="{left}" y="24" font-size="15" font-weight="bold">energy stack, strategy '
           f'{esc(str(summary["strategy"]))}</text>']
    for x, stage in enumerate(STAGES):
        out.append(f'<text x="{left + x * (width + gap_x) + width / 2}" y="48" text-anchor="middle" '
                   f'font-weight="bold">{TITLES[stage]}</text>')
    for frm, to, what in summary["edges"]:
        if frm in place and to in place:
            (x1, y1), (x2, y2) = place[frm], place[to]
            out.append(f'<line x1="{x1 + width}" y1="{y1 + height / 2}" x2="{x2}" y2="{y2 + height / 2}" '
                       f'stroke="#555" marker-end="url(#arrow)"><title>{esc(what)}</title></line>')
    for name, (x, y) in place.items():
        box = summary["boxes"][name]
        status = _status(box)
        fill = COLOURS.get(status, "#fde7e9")
        where = box["minion"] + (f" {box['published']}" if box.get("published") else "")
        out.append(f'<g><title>{esc(name)}</title><rect x="{x}" y="{y}" width="{width}" height="{height}" rx="6" '
                   f'fill="{fill}" stroke="#333"/>'
                   f'<text x="{x + 8}" y="{y + 17}" font-weight="bold">{esc(str(box["cpu"] or "")[:36])}</text>'
                   f'<text x="{x + 8}" y="{y + 33}">{esc(where[:38])}</text>'
                   f'<text x="{x + 8}" y="{y + 49}">{esc(status)}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def dot(summary):
    """The topology in Graphviz DOT (``dot -Tpng``): a cluster per machine, an edge per flow."""
    def quote(value):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = ["digraph energy {", "  rankdir=LR;", "  node [shape=box, style=\"rounded,filled\", fillcolor=white];"]
    by_minion = {}
    for name, box in sorted(summary["boxes"].items()):
        by_minion.setdefault(box["minion"], []).append(name)
    for i, (minion, members) in enumerate(sorted(by_minion.items())):
        out.append(f"  subgraph cluster_{i} {{ label={quote(minion)};")
        for name in members:
            box = summary["boxes"][name]
            parts = (TITLES.get(box["component"], box["component"]), box["cpu"] or "", _status(box))
            label = '"' + "\\n".join(quote(p)[1:-1] for p in parts) + '"'
            out.append(f"    {quote(name)} [label={label}, fillcolor={quote(COLOURS.get(_status(box), '#fde7e9'))}];")
        out.append("  }")
    for frm, to, what in summary["edges"]:
        out.append(f"  {quote(frm)} -> {quote(to)} [tooltip={quote(what)}];")
    out.append("}")
    return "\n".join(out) + "\n"
