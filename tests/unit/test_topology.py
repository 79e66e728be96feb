"""The deployment summary: the plan's topology against what each minion runs, drawn as text, SVG
and DOT; what differs between plan and reality."""

import copy
import xml.etree.ElementTree as ET

import pytest

from energy_core import plan, topology
from tests.unit.test_strategy_plans import GOLD, EPYC, role_facts


@pytest.fixture
def conf(defaults):
    conf = copy.deepcopy(defaults)
    conf["control"] = "db1"
    conf["grafana"].update(enabled=True, admin_password="grafana-admin-pw")
    conf["mongo"].update(admin_password="mongo-admin-pw-1", sensor_password="mongo-sensor-pw-2",
                         formula_password="mongo-formula-pw-3")
    return conf


def live_of(full_plan, skip=(), extra=None):
    """What each minion would answer if it ran exactly the plan (but ``skip``), plus ``extra``."""
    lives = {}
    for minion, host in full_plan["hosts"].items():
        lives[minion] = {"minion": minion, "containers": [
            {"name": c["name"], "component": c["component"], "cpu": c["cpu"], "state": "running",
             "health": {"status": "healthy"}, "maintenance": None,
             "published": (c.get("url") or "").split("//")[-1] or None, "volume": c.get("volume"),
             "volume_bytes": 4096 if c.get("volume") else None}
            for c in host["containers"] if c["name"] not in skip]}
    for minion, container in (extra or {}).items():
        lives.setdefault(minion, {"minion": minion, "containers": []})["containers"].append(container)
    return lives


def test_every_flow_of_the_plan_is_an_edge_and_a_full_deployment_has_no_difference(conf):
    full_plan = plan.build(conf, role_facts(conf))
    planned = topology.planned(full_plan)
    boxes = planned["boxes"]
    assert {b["component"] for b in boxes.values()} == {"sensor", "mongo", "formula", "influxdb", "grafana"}
    # each sensor writes to the MongoDB of its CPU name, which its SmartWatts reads
    for group in full_plan["groups"]:
        for minion in group["sensors"]:
            (edge,) = [e for e in planned["edges"] if e[0] == f"energy-{minion}-sensor"]
            assert boxes[edge[1]]["component"] == "mongo" and boxes[edge[1]]["minion"] == group["mongo"]
    summary = topology.combine(planned, live_of(full_plan), expected=["s1", "s2", "s3"])
    diff = summary["differences"]
    assert not any(diff[k] for k in ("missing", "not_running", "unplanned", "no_answer", "errors"))
    text = topology.text(summary)
    assert "every planned container runs, nothing unplanned" in text
    for cpu in (GOLD, EPYC):
        assert f"  {cpu}" in text
    assert "[hwpc-sensor @ s1: healthy]" in text and "[Grafana @ db1" in text


def test_a_missing_container_an_unplanned_one_and_a_silent_minion_are_named(conf):
    full_plan = plan.build(conf, role_facts(conf))
    planned = topology.planned(full_plan)
    formula = next(n for n, b in planned["boxes"].items() if b["component"] == "formula" and b["cpu"] == EPYC)
    stray = {"name": "energy-s2-sensor-old", "component": "sensor", "cpu": GOLD, "state": "exited", "health": None,
             "maintenance": None, "published": None, "volume": None, "volume_bytes": None}
    lives = live_of(full_plan, skip={formula}, extra={"s2": stray})
    del lives["s3"]
    summary = topology.combine(planned, lives, expected=["s1", "s2", "s3"])
    diff = summary["differences"]
    assert diff["missing"] == [formula]
    assert diff["unplanned"] == [{"minion": "s2", "name": "energy-s2-sensor-old", "component": "sensor",
                                  "state": "exited"}]
    assert diff["no_answer"] == ["s3"]
    assert summary["boxes"]["energy-s3-sensor"]["state"] == "unknown"
    text = topology.text(summary)
    assert f"missing: {formula}" in text and "unplanned: energy-s2-sensor-old on s2 (exited)" in text
    assert "did not answer: s3" in text and "UNPLANNED" in text


def test_shards_draw_one_chain_per_smartwatts_each_fed_by_its_own_sensors(conf):
    conf["formula"]["max_sensors"] = 1
    full_plan = plan.build(conf, role_facts(conf))
    summary = topology.combine(topology.planned(full_plan), live_of(full_plan))
    chains = topology._chains(summary)[GOLD]  # pylint: disable=protected-access
    assert [c["sensors"] for c in chains] == [["energy-s1-sensor"], ["energy-s2-sensor"]]
    assert len({c["formula"] for c in chains}) == 2 and len({c["mongo"] for c in chains}) == 1


def test_svg_and_dot_draw_every_box_and_escape_what_the_mine_says(conf):
    full_plan = plan.build(conf, role_facts(conf))
    summary = topology.combine(topology.planned(full_plan), live_of(full_plan))
    hostile = next(iter(summary["boxes"].values()))
    hostile["cpu"] = 'Evil"</text><script>x</script>\\'
    picture = ET.fromstring(topology.svg(summary))  # well-formed XML despite the CPU name
    titles = [t.text for t in picture.iter("{http://www.w3.org/2000/svg}title")]
    assert set(summary["boxes"]) <= set(titles)
    assert not list(picture.iter("{http://www.w3.org/2000/svg}script"))
    dot = topology.dot(summary)
    assert dot.count(" -> ") == len(summary["edges"])
    assert 'Evil\\"</text><script>x</script>\\\\' in dot  # quoted for Graphviz, the quote cannot end the label
