"""A maintenance file that cannot be read: refused with its path, the readable windows kept, and
never taken for "no maintenance" (that would undo an operator's hold)."""

import json

import pytest
from salt.exceptions import CommandExecutionError

from energy_core import maintenance
from tests.unit.loader_mocks import (  # noqa: F401  the fixtures are used by name  pylint: disable=unused-import
    SENSOR, cachedir, conf_file, configure_loader_modules, energy_mod, energy_runner, energy_state, engine_on,
    engine_path, module_logs, module_opts, module_salt, pillar, runner_opts, state_opts, state_salt, state_states, heal_mod)

NOW = 1_800_000_000.0


@pytest.mark.parametrize("content", ['{"formula": {"since": 1', "", "\x00\x01garbage", "[1, 2]", "null"],
                         ids=["cut-short", "empty", "binary", "a-list", "null"])
def test_an_unreadable_file_holds_everything_and_names_its_path(tmp_path, content):
    path = tmp_path / "maintenance.json"
    path.write_text(content)
    entries = maintenance.read(str(path), NOW)
    assert list(entries) == ["all"] and str(path) in entries["all"]["unreadable"]
    for name, component in (("energy-a-formula-x", "formula"), (SENSOR, "sensor")):
        reason = maintenance.held_reason(entries, name, component, "node-a")
        assert reason.startswith(f"the maintenance file {path} ")
        assert "left alone until it is fixed" in reason and reason.endswith("salt node-a energy_heal.maintenance off all")


def test_readable_windows_are_kept_and_only_the_bad_one_holds_by_its_error(tmp_path):
    path = tmp_path / "maintenance.json"
    path.write_text(json.dumps({"formula": {"since": NOW, "until": None, "reason": "disk"},
                                "sensor": {"since": "yesterday"}, "mongo": "on",
                                "grafana": {"since": NOW - 7200, "until": NOW - 3600, "reason": ""}}))
    entries = maintenance.read(str(path), NOW)
    assert entries["formula"] == {"since": NOW, "until": None, "reason": "disk"}  # kept
    assert "grafana" not in entries  # ended: as before
    assert sorted(maintenance.unreadable(entries)) == ["mongo", "sensor"]
    assert "unreadable window for sensor" in maintenance.held_reason(entries, SENSOR, "sensor", "n")
    assert maintenance.held_reason(entries, "energy-n-formula-x", "formula", "n").startswith("maintenance on formula")
    assert maintenance.held_reason(entries, "energy-n-influxdb-x", "influxdb", "n") == ""


def test_a_new_window_is_refused_over_an_unreadable_file_but_off_ends_it(tmp_path):
    path = tmp_path / "maintenance.json"
    path.write_text("{oops")
    entries = maintenance.read(str(path), NOW)
    with pytest.raises(ValueError) as refused:
        maintenance.change(entries, "on", "formula", "", None, NOW)
    assert str(path) in str(refused.value) and "energy_heal.maintenance off all" in str(refused.value)
    with pytest.raises(ValueError):  # ending another window would write over it too
        maintenance.change(entries, "off", "formula", "", None, NOW)
    action, left, ended = maintenance.change(entries, "off", "all", "", None, NOW)
    assert (action, left, ended) == ("off", {}, ["all"])
    maintenance.write(str(path), left)
    assert json.loads(path.read_text()) == {}
    assert (tmp_path / "maintenance.json.corrupt").read_text() == "{oops"  # what was there is kept to look at


def test_the_module_shows_the_error_in_status_and_refuses_on(module_salt, cachedir):
    path = cachedir / "energy" / "maintenance.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"all": {"since": ')
    status = heal_mod.maintenance("status")
    assert str(path) in status["all"]["unreadable"]
    with pytest.raises(CommandExecutionError) as refused:
        heal_mod.maintenance("on", "formula")
    assert str(path) in str(refused.value)
    assert path.read_text() == '{"all": {"since": '  # untouched
    assert heal_mod.held(SENSOR, "sensor").startswith(f"the maintenance file {path} cannot be read")
    assert heal_mod.maintenance("off", "all") == {}
    assert heal_mod.held(SENSOR, "sensor") == ""
    heal_mod.maintenance("on", "formula")  # the window store is usable again
    assert "formula" in heal_mod.maintenance("status")
