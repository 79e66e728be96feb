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
