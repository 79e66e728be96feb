"""energy/files/dashboard.json is a Grafana 10+ dashboard whose queries use only what is defined."""

import json
import re

from tests.conftest import ROOT

DASHBOARD = json.loads((ROOT / "energy" / "files" / "dashboard.json").read_text())


def test_top_level_fields_of_a_grafana_10_dashboard():
    for key in ("uid", "title", "panels", "templating", "time", "schemaVersion", "annotations"):
        assert key in DASHBOARD
    assert DASHBOARD["schemaVersion"] >= 36  # Grafana 9.x/10.x schema
    assert len(DASHBOARD["uid"]) <= 40
    assert DASHBOARD["editable"] is False  # provisioned: changes belong in the formula


def test_panels_have_unique_ids_and_fit_the_24_column_grid():
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        assert panel["type"] in ("row", "timeseries", "bargauge", "stat", "table")


def test_every_query_is_raw_influxql_on_the_cpu_datasource_and_uses_defined_variables():
    variables = {v["name"] for v in DASHBOARD["templating"]["list"]}
    builtins = {"timeFilter", "__interval", "tag_sensor", "tag_target"}
    queries = 0
    for panel in DASHBOARD["panels"]:
        if panel["type"] == "row":
            assert panel["repeat"] in variables
            continue
        assert panel["datasource"] == {"type": "influxdb", "uid": "${datasource}"}
        for target in panel["targets"]:
            queries += 1
            assert target["rawQuery"] is True and target["refId"]
            used = set(re.findall(r"\$\{?(\w+)", target["query"] + target.get("alias", "")))
            assert used <= variables | builtins, used - variables - builtins
            assert "power_consumption" in target["query"]
            # never group by the `formula` tag: SmartWatts sets it to a model hash (dozens during warm-up)
            assert '"formula"' not in target["query"]
    assert queries >= 4


def test_datasource_variable_matches_the_provisioned_names():
    (variable,) = [v for v in DASHBOARD["templating"]["list"] if v["type"] == "datasource"]
    pattern = variable["regex"].strip("/")
    assert re.match(pattern, "energy Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz")


def comparison_plan(mode):
    import copy
    import pathlib

    import yaml

    from energy_core import plan

    defaults = yaml.safe_load((pathlib.Path(ROOT) / "energy" / "defaults.yaml").read_text())["energy"]
    conf = copy.deepcopy(defaults)
    conf.update(control="ctl")
    conf["sensor"]["mode"] = mode
    conf["grafana"]["admin_password"] = "a-long-enough-one"
    facts = {"sensors": {"a": {"cpu_name": "Xeon", "cpu_vendor": "intel", "cpu_family": 6, "cpu_model": 85,
                               "rapl_domains": ["package", "dram"]},
                         "b": {"cpu_name": "EPYC", "cpu_vendor": "amd", "cpu_family": 23, "cpu_model": 49,
                               "rapl_domains": ["package"]}},
             "mongos": {"ctl": {}}, "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}}, "grafana": {"ctl": {}}}
    built = plan.build(conf, facts)
    (grafana,) = [c for c in built["hosts"]["ctl"]["containers"] if c["component"] == "grafana"]
    (compare,) = [f["data"] for path, f in grafana["files"].items() if path.endswith("/compare.json")]
    return built, compare


def test_the_comparison_dashboard_queries_each_cpu_on_its_own_datasource():
    from energy_core import names

    built, compare = comparison_plan("best")
    assert compare["uid"] == "energy-compare" and len(compare["uid"]) <= 40
    charts = [p for p in compare["panels"] if p["type"] != "text"]
    assert [p["title"] for p in charts] == ["Package power per machine (measured by RAPL)", "Power per container",
                                            "Share of each container in its machine's power",
                                            "Energy over the time range (J)"]
    for panel in charts:
        assert panel["datasource"]["uid"] == "-- Mixed --"
        uids = [t["datasource"]["uid"] for t in panel["targets"]]
        assert uids == [names.datasource_uid(built["cpus"][cpu]["slug"]) for cpu in sorted(built["cpus"])]
        assert all("$timeFilter" in t["query"] for t in panel["targets"])
    share = next(p for p in charts if p["title"].startswith("Share"))
    assert share["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "percent"


def test_the_comparison_header_says_whether_the_configurations_are_identical():
    _, best = comparison_plan("best")
    text = best["panels"][0]["options"]["content"]
    assert text.startswith("**The configurations differ**")
    assert "- EPYC: cycles, instructions, uops; DRAM not measured" in text
    assert "- Xeon: ref_cycles, cycles, instructions, llc_misses; DRAM measured" in text
    _, common = comparison_plan("common")
    text = common["panels"][0]["options"]["content"]
    assert text.startswith("**Identical configurations**") and "(cycles, instructions)" in text
    assert "- Xeon: left out ref_cycles, llc_misses to match the others" in text


def test_a_cpu_name_from_the_mine_cannot_inject_markdown_or_grafana_variables():
    from energy_core import components, dashboards

    name = "Evil [click](http://attacker) <img src=x> ${GF_SECURITY_ADMIN_PASSWORD}"
    text = dashboards._md(name)  # each Markdown/HTML character escaped: shown as text, never a link or tag
    assert r"\[click\]\(http://attacker\)" in text and r"\<img src=x\>" in text and r"\${" in text
    group = {"name": "evil", "cpu": name, "slug": "evil", "influxdb_url": "http://a:8086",
             "influxdb_database": "power_evil", "sensors": ["n1"]}
    sources = components.datasources([group], "per_cpu")
    (source,) = components.grafana_datasources({"influxdb": {"version": 1}}, sources)["datasources"]
    # Grafana reads $$ as a literal $: the name shows, the variable is not expanded
    assert source["name"] == "energy " + name.replace("${", "$${")
