"""The experiment's report, the pure parts, on synthetic SmartWatts series: joules, gaps and coverage
(never interpolated), the model's error percentiles, the checks of what minions answer, the JSON
keys scripts rely on, the tidy CSV, marks and experiments, and the configuration compared."""

import csv
import io
import json

import pytest

from energy_core import experiment, report, report_names, report_plot, report_view
from energy_core.trust import Untrusted

S = 10**9
T0 = 1_800_000_000 * S  # the window's start


def series(sensor, target, scope, points):
    return {"name": "power_consumption", "tags": {"sensor": sensor, "target": target, "scope": scope},
            "columns": ["time", "power"], "values": [[t, w] for t, w in points]}


def machine_series(sensor="node-a", seconds=60, skip=(), web_w=6.0, db_w=3.0, rapl_w=20.0, global_w=19.0):
    """One tick a second: rapl, global, two containers (cpu scope), dram for web; ``skip``: the
    seconds without any point (the formula stopped)."""
    ticks = [T0 + i * S for i in range(seconds) if i not in skip]
    return [series(sensor, "rapl", "cpu", [(t, rapl_w) for t in ticks]),
            series(sensor, "global", "cpu", [(t, global_w) for t in ticks]),
            series(sensor, "web", "cpu", [(t, web_w) for t in ticks]),
            series(sensor, "web", "dram", [(t, 1.0) for t in ticks]),
            series(sensor, "db", "cpu", [(t, db_w) for t in ticks])]


def accumulate(all_series, seconds=60, buckets=0, split_at=None):
    found = report.Accumulator(T0, T0 + seconds * S, 1.0, buckets)
    for one in all_series:
        if split_at is None:
            found.feed(one)
            continue
        # the slice boundary cuts every series in two: the first part, close the slice, the rest
        found.feed(dict(one, values=[v for v in one["values"] if v[0] < split_at]))
    if split_at is not None:
        found.close_slice()
        for one in all_series:
            found.feed(dict(one, values=[v for v in one["values"] if v[0] >= split_at]))
    return found.result()


def test_joules_are_watts_times_the_period_summed_over_ticks_and_scopes():
    found = accumulate(machine_series())
    web = found["targets"]["node-a"]["web"]
    assert web["scope_j"] == {"cpu": pytest.approx(360.0), "dram": pytest.approx(60.0)}
    assert web["ticks"] == 60 and web["peak_w"] == pytest.approx(7.0)
    assert found["machines"]["node-a"]["rapl_j"] == pytest.approx(1200.0)
    assert found["machines"]["node-a"]["global_j"] == pytest.approx(1140.0)
    assert found["machines"]["node-a"]["global_ticks"] == 60
    assert found["machines"]["node-a"]["gaps"] == []


def test_slices_give_the_same_sums_as_one_read():
    whole = accumulate(machine_series(skip=range(20, 40)))
    cut = accumulate(machine_series(skip=range(20, 40)), split_at=T0 + 30 * S)
    assert whole == cut


def test_a_stopped_formula_is_a_gap_with_its_times_and_is_not_interpolated():
    found = accumulate(machine_series(skip=range(20, 40)))
    assert found["machines"]["node-a"]["gaps"] == [[T0 + 20 * S, T0 + 40 * S]]
    assert found["machines"]["node-a"]["ticks"] == 40
    assert found["targets"]["node-a"]["web"]["scope_j"]["cpu"] == pytest.approx(40 * 6.0)  # no fill


def test_gaps_at_both_ends_and_jitter_under_half_a_period_is_no_gap():
    jittered = [T0 + 5 * S + i * S + (S // 10 if i % 2 else 0) for i in range(50)]
    found = report.Accumulator(T0, T0 + 60 * S, 1.0)
    found.feed(series("a", "rapl", "cpu", [(t, 10.0) for t in jittered]))
    assert found.result()["machines"]["a"]["gaps"] == [[T0, T0 + 5 * S], [T0 + 55 * S + S // 10, T0 + 60 * S]]


def test_a_window_starting_between_two_ticks_has_no_gap_at_its_start():
    found = report.Accumulator(T0 - 3 * S // 10, T0 + 10 * S, 1.0)  # the tick before T0 covers its start
    found.feed(series("a", "rapl", "cpu", [(T0 + i * S, 10.0) for i in range(10)]))
    assert found.result()["machines"]["a"]["gaps"] == []


def test_sockets_of_one_tick_are_summed():
    found = report.Accumulator(T0, T0 + 2 * S, 1.0)
    found.feed(series("a", "web", "cpu", [(T0, 2.0), (T0, 3.0), (T0 + S, 1.0)]))
    assert found.result()["targets"]["a"]["web"]["scope_j"]["cpu"] == pytest.approx(6.0)


def test_error_percentiles_are_nearest_rank_to_a_hundredth_of_a_percent():
    errors = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 10.0]
    found = report.Accumulator(T0, T0 + 10 * S, 1.0)
    found.feed(series("a", "rapl", "cpu", [(T0 + i * S, 100.0) for i in range(10)]))
    found.feed(series("a", "global", "cpu", [(T0 + i * S, 100.0 + e) for i, e in enumerate(errors)]))
    histogram = dict(map(tuple, found.result()["machines"]["a"]["errors"]))
    assert report.percentile(histogram, 0.5) == 2.5
    assert report.percentile(histogram, 0.95) == 10.0
    assert report.percentile({}, 0.5) is None


def test_a_tick_without_the_model_estimate_is_no_error_sample():
    found = report.Accumulator(T0, T0 + 2 * S, 1.0)
    found.feed(series("a", "rapl", "cpu", [(T0, 10.0), (T0 + S, 10.0)]))
    found.feed(series("a", "global", "cpu", [(T0, 11.0)]))
    assert found.result()["machines"]["a"]["errors"] == [[1000, 1]]


def test_slices_cover_the_window_and_an_empty_window_is_refused():
    assert report.slices(0, 25 * 60 * S) == [(0, 600 * S), (600 * S, 1200 * S), (1200 * S, 1500 * S)]
    with pytest.raises(report.ReportError, match="since: bad value"):
        report.slices(10, 10)


def test_plot_buckets_hold_the_energy_of_their_time():
    found = accumulate(machine_series(), buckets=6)
    assert found["targets"]["node-a"]["db"]["buckets"] == pytest.approx([30.0] * 6)


# --------------------------------------------------------------------------- the master's checks


def checked(answer, sensors=("node-a",), buckets=0):
    return report_view.checked("ctl", answer, list(sensors), T0, T0 + 60 * S, 1.0, buckets)


def test_a_well_formed_answer_passes_and_a_sensor_not_of_the_plan_is_left_out():
    answer = accumulate(machine_series() + machine_series("intruder"))
    found = checked(json.loads(json.dumps(answer)))
    assert set(found["machines"]) == {"node-a"} and set(found["targets"]) == {"node-a"}


@pytest.mark.parametrize("damage, match", [
    (lambda a: a["targets"]["node-a"]["web"].update(peak_w=float("nan")), "peak_w"),
    (lambda a: a["targets"]["node-a"]["web"].update(first=T0 - 1), "not a time in the window"),
    (lambda a: a["machines"]["node-a"].update(rapl_j=-1), "rapl_j"),
    (lambda a: a["machines"]["node-a"].update(errors=[["x", 1]]), r"not \[bin, count\]"),
    (lambda a: a["targets"]["node-a"].update({"\x1b[2J": a["targets"]["node-a"]["web"]}), "not a target name"),
    (lambda a: a["targets"]["node-a"]["web"]["scope_j"].update(gpu=1.0), "scope"),
    (lambda a: a.update(since=0), "not the sums of the window asked for"),
])
def test_a_malformed_answer_is_refused_naming_the_minion(damage, match):
    answer = json.loads(json.dumps(accumulate(machine_series())))
    damage(answer)
    with pytest.raises(Untrusted, match=f"minion 'ctl'.*{match}"):
        checked(answer)


def plan():
    group = {"cpu": "Xeon Gold", "sensors": ["node-a", "node-b"], "influxdb": "ctl", "influxdb_database": "power_gold"}
    formula = {"name": "energy-ctl-formula", "component": "formula", "cpu": "Xeon Gold", "image_repo": "smartwatts",
               "image_tag": "2.1.2", "run": {"command": ["--stream", "--cpu-base-freq", "2100",
                                                         "--sensor-reports-frequency", "1000", "--disable-dram-formula"]}}
    sensor = {"name": "energy-node-a-sensor", "component": "sensor", "cpu": "Xeon Gold", "image_repo": "hwpc-sensor",
              "image_tag": "1.3.0"}
    return {"strategy": "per_cpu", "groups": [group],
            "cpus": {"Xeon Gold": {"sensors": ["node-a", "node-b"],
                                   "sensor": {"mode": "best", "core": ["CPU_CLK_UNHALTED:REF_P"],
                                              "rapl": ["RAPL_ENERGY_PKG"], "msr": ["APERF", "MPERF"], "dram": False}}},
            "hosts": {"node-a": {"containers": [sensor]}, "ctl": {"containers": [formula]}}}


def document(patterns=None):
    answer = checked(accumulate(machine_series(skip=range(20, 40)) + machine_series(
        "node-a", 0) + [series("node-a", "energy-node-a-sensor", "cpu", [(T0 + i * S, 0.5) for i in range(60)])]))
    names = {"web": {"name": "shop-web-1", "project": "shop", "service": "web"}}
    found = report_view.machine("node-a", "Xeon Gold", answer["machines"]["node-a"], answer["targets"]["node-a"],
                                names, report_view.monitor_names(plan(), "node-a"), (T0, T0 + 60 * S), 1.0, patterns)
    cpus = [report_view.cpu_entry("Xeon Gold", [found], "best", experiment.cpu_config(plan(), "Xeon Gold"))]
    return report_view.document(T0, T0 + 60 * S, [found], cpus)


def test_the_json_has_the_keys_scripts_rely_on():
    doc = json.loads(json.dumps(document()))
    assert {"since", "until", "machines", "cpus"} <= set(doc) and doc["since"] == T0 / S
    found = doc["machines"][0]
    assert {"minion", "cpu", "rapl_j", "model_j", "monitor_j", "containers"} <= set(found)
    row = next(r for r in found["containers"] if r["target"] == "web")
    assert {"name", "target", "joules", "scope_j", "mean_w", "peak_w", "seconds", "coverage"} <= set(row)
    assert row["name"] == "shop-web-1" and row["service"] == "web" and row["resolved"]
    assert row["joules"] == pytest.approx(40 * 7.0) and row["mean_w"] == pytest.approx(7.0)
    assert row["seconds"] == 40 and row["coverage"] == pytest.approx(40 / 60)
    assert found["coverage"] == pytest.approx(40 / 60)
    assert found["gaps"] == [{"start": T0 / S + 20, "end": T0 / S + 40, "seconds": 20.0}]
    assert {"cpu", "joules", "error_median_pct", "error_p95_pct", "mode", "config"} <= set(doc["cpus"][0])
    assert doc["cpus"][0]["error_median_pct"] == 5.0  # |19 - 20| / 20


def test_the_monitor_is_apart_and_an_unresolved_target_keeps_its_path():
    doc = document()
    found = doc["machines"][0]
    assert [r["name"] for r in found["monitor"]] == ["energy-node-a-sensor"]
    assert found["monitor_j"] == pytest.approx(30.0)
    assert found["model_j"] == pytest.approx(40 * 6.0 + 40 * 3.0 + 30.0)  # the package scope, as rapl_j
    assert found["model_dram_j"] == pytest.approx(40 * 1.0)
    db = next(r for r in found["containers"] if r["target"] == "db")
    assert db["name"] == "db" and not db["resolved"]
    assert "db (unresolved)" in report_view.text(doc, str)


def test_containers_filter_matches_name_target_or_project_service():
    assert [r["target"] for r in document(["shop/*"])["machines"][0]["containers"]] == ["web"]
    assert [r["target"] for r in document(["d?"])["machines"][0]["containers"]] == ["db"]


def test_the_csv_is_tidy_with_units_in_its_column_names():
    text = report_view.tidy_csv(document())
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(report_view.CSV_COLUMNS)
    assert all(c.endswith(("_j", "_w", "_s", "_pct")) for c in report_view.CSV_COLUMNS if c not in
               ("minion", "cpu", "container", "target", "project", "service", "monitor"))
    assert len(rows) == 3 and {r["monitor"] for r in rows} == {"true", "false"}
    assert float(next(r for r in rows if r["target"] == "web")["joules_j"]) == pytest.approx(280.0)


def test_the_csv_reads_as_is_with_pandas():
    import pandas  # pylint: disable=import-outside-toplevel  (requirements.txt)

    frame = pandas.read_csv(io.StringIO(report_view.tidy_csv(document())))
    assert frame["joules_j"].dtype.kind == "f" and frame["monitor"].dtype == bool


def test_databases_of_the_plan_and_bad_filters_name_the_key():
    assert report_view.databases(plan(), minions="node-b") == [
        {"cpu": "Xeon Gold", "minion": "ctl", "database": "power_gold", "sensors": ["node-b"]}]
    with pytest.raises(report.ReportError, match=r"cpus: bad value 'EPYC'.*Xeon Gold"):
        report_view.databases(plan(), cpus="EPYC")
    with pytest.raises(report.ReportError, match=r"minions: bad value 'ctl'"):
        report_view.databases(plan(), minions="ctl")


# --------------------------------------------------------------------------- names, marks, configuration

ID = "4f" * 32


@pytest.mark.parametrize("target, expected", [
    (f"/docker/{ID}", ID), (f"docker/{ID}", ID), (f"system.slice/docker-{ID}.scope", ID),
    (f"/system.slice/docker-{ID}.scope", ID), ("web-1", None), ("rapl", None), (f"/docker/{ID}x", None),
])
def test_container_ids_in_cgroup_paths(target, expected):
    assert report_names.container_id(target) == expected


def test_targets_resolve_from_docker_then_from_the_record():
    gone = "9a" * 32
    lines = [report_names.record(gone, "/batch-1", {report_names.LABEL_PROJECT: "exp"}, 100.0), "not json"]
    live = [{"id": ID, "name": "web-1", "labels": {report_names.LABEL_SERVICE: "web"}}]
    found = report_names.resolve([f"/docker/{ID}", f"system.slice/docker-{gone}.scope", "web-1", "/docker/unknown"],
                                 live, report_names.read_records(lines))
    assert found[f"/docker/{ID}"]["name"] == "web-1" and found[f"/docker/{ID}"]["service"] == "web"
    assert found[f"system.slice/docker-{gone}.scope"] == {"name": "batch-1", "project": "exp", "service": None,
                                                          "id": gone}
    assert found["web-1"]["id"] == ID and found["/docker/unknown"] is None


def test_the_record_keeps_the_experiments_duration_and_a_bounded_count():
    lines = [report_names.record(f"{i:064x}", f"c{i}", {}, 1000.0 + i) for i in range(10)]
    assert len(report_names.kept(lines, 1009.0, 4.5)) == 5
    assert len(report_names.kept(lines, 1009.0, 100, limit=3)) == 3


def test_names_a_minion_gives_are_checked():
    asked = ["/docker/a", "/docker/b", "/docker/c"]
    found, problems = report_names.checked("node-a", asked, {
        "/docker/a": {"name": "web", "project": "p" * 500, "service": "web"},
        "/docker/b": {"name": "bad name; rm -rf /"}, "/docker/z": {"name": "not-asked"}})
    assert found == {"/docker/a": {"name": "web", "project": None, "service": "web"}}
    assert len(problems) == 1 and "node-a" in problems[0]
    assert report_names.checked("node-a", asked, "junk")[0] == {}


def test_marks_round_trip_and_make_experiments():
    line = experiment.line("run-42", "start", 'say "hi"', T0)
    assert line == f'energy_mark,name=run-42,phase=start text="run-42 start: say \\"hi\\"",note="say \\"hi\\"" {T0}'
    marks = experiment.merged(
        [{"time": T0, "name": "run-42", "phase": "start", "note": ""},
         {"time": T0 + 60 * S, "name": "run-42", "phase": "end", "note": ""}],
        [{"time": T0, "name": "run-42", "phase": "start", "note": ""},
         {"time": T0 + 90 * S, "name": "run-43", "phase": "start", "note": ""}])
    assert len(marks) == 3
    assert experiment.window(marks, "run-42", T0 + 100 * S) == (T0, T0 + 60 * S, False)
    assert experiment.window(marks, "run-43", T0 + 100 * S) == (T0 + 90 * S, T0 + 100 * S, True)
    with pytest.raises(experiment.MarkError, match=r"experiment: bad value 'run-9'.*run-42"):
        experiment.window(marks, "run-9", T0)


@pytest.mark.parametrize("name, phase, note, match", [
    ("run 42", "start", "", "name: bad value"), ("run", "begin", "", "phase: bad value"),
    ("run", "start", "a\nb", "note: bad value"),
])
def test_a_bad_mark_names_its_key(name, phase, note, match):
    with pytest.raises(experiment.MarkError, match=match):
        experiment.check_mark(name, phase, note)


def test_marks_from_a_minion_are_checked():
    assert experiment.checked([{"time": 1, "name": "ok", "phase": "end"}, {"time": -1, "name": "x", "phase": "end"},
                               {"time": 2, "name": "bad name", "phase": "end"}, "junk"]) == [
        {"time": 1, "name": "ok", "phase": "end", "note": ""}]
    assert experiment.checked("junk") == []


def test_the_configuration_is_in_the_report_and_compare_says_what_differed():
    config = experiment.cpu_config(plan(), "Xeon Gold")
    assert config["frequency_ms"] == 1000 and config["smartwatts"] == "smartwatts:2.1.2"
    assert config["parameters"] == {"cpu-base-freq": "2100", "sensor-reports-frequency": "1000",
                                    "disable-dram-formula": True}
    before = {"cpus": [{"cpu": "Xeon Gold", "config": config}, {"cpu": "EPYC", "config": {}}]}
    after = {"cpus": [{"cpu": "Xeon Gold", "config": dict(config, mode="common")}]}
    assert experiment.compare(before, after) == ["EPYC: only in the earlier report",
                                                 'Xeon Gold: mode: "best" -> "common"']
    assert experiment.compare(before, before) == ["the configurations of every CPU name are identical"]


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("svg", b"<?xml")])
def test_the_plot_draws_power_stacked_per_machine_and_joules(fmt, magic):
    answer = checked(accumulate(machine_series(), buckets=12), buckets=12)
    found = report_view.machine("node-a", "Xeon Gold", answer["machines"]["node-a"], answer["targets"]["node-a"],
                                {}, [], (T0, T0 + 60 * S), 1.0)
    picture = report_plot.draw(report_view.document(T0, T0 + 60 * S, [found], []), 12, fmt)
    assert picture.startswith(magic) and len(picture) > 5000


def test_both_dashboards_show_the_marks_as_annotations():
    from tests.unit.test_dashboard import DASHBOARD, comparison_plan

    (marks,) = [a for a in DASHBOARD["annotations"]["list"] if a.get("query") == experiment.ANNOTATION_QUERY]
    assert marks["datasource"] == {"type": "influxdb", "uid": "${datasource}"} and marks["textColumn"] == "text"
    _built, compare = comparison_plan("best")
    (marks,) = json.loads(compare)["annotations"]["list"] if isinstance(compare, str) else compare["annotations"]["list"]
    assert marks["query"] == experiment.ANNOTATION_QUERY and marks["datasource"]["type"] == "influxdb"
