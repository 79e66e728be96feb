"""The execution module's commands with Salt's loader mocked: the maintenance switch, energy_heal.react,
and secrets kept out of every return."""

import fcntl
import os
import stat
import time
from unittest import mock

import pytest
from salt.exceptions import CommandExecutionError

from tests.unit.loader_mocks import (  # noqa: F401  the fixtures are used by name  pylint: disable=unused-import
    CPU, DEFAULTS_TEXT, FACTS, FORMULA, MINION, RUN, SENSOR, cachedir, conf_file, configure_loader_modules, energy_mod,
    energy_runner, energy_state, engine_on, engine_path, inspected, module_logs, module_opts, module_salt, pillar,
    runner_opts, state_opts, state_salt, state_states, heal_mod, archive_mod)


# --------------------------------------------------------------------------- energy_heal.maintenance


def test_maintenance_on_writes_a_private_window_and_fires_the_event(module_salt, cachedir):
    before = time.time()
    entries = heal_mod.maintenance("on", "formula", reason="moving the disk", hours=2)
    window = entries["formula"]
    assert window["reason"] == "moving the disk"
    assert before <= window["since"] <= time.time()
    assert window["until"] == pytest.approx(window["since"] + 2 * 3600)
    path = cachedir / "energy" / "maintenance.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert heal_mod.maintenance("status") == entries  # what was written reads back
    module_salt["event.send"].assert_called_once_with(
        "energy/maintenance/on", {"minion": MINION, "what": "formula", "reason": "moving the disk", "ended": []})


def test_maintenance_without_hours_lasts_until_off(module_salt):
    assert heal_mod.maintenance("on", "all")["all"]["until"] is None
    assert module_salt["event.send"].call_args.args[0] == "energy/maintenance/on"


def test_maintenance_cli_yaml_booleans_are_on_and_off():
    # `salt node-a energy_heal.maintenance on` gives True: the CLI's YAML reads a bare on as a boolean
    assert "sensor" in heal_mod.maintenance(True, "sensor")
    assert heal_mod.maintenance(False, "sensor") == {}


def test_maintenance_off_ends_one_window_or_all(module_salt):
    heal_mod.maintenance("on", "formula")
    heal_mod.maintenance("on", SENSOR, reason="new kernel")
    heal_mod.maintenance("on", "mongo")
    module_salt["event.send"].reset_mock()

    assert sorted(heal_mod.maintenance("off", "formula")) == sorted(["mongo", SENSOR])
    module_salt["event.send"].assert_called_once_with(
        "energy/maintenance/off", {"minion": MINION, "what": "formula", "reason": "", "ended": ["formula"]})

    # a window that is not open ends nothing (the event still says what was asked)
    heal_mod.maintenance("off", "grafana")
    assert module_salt["event.send"].call_args.args[1]["ended"] == []

    assert heal_mod.maintenance("off", "all") == {}
    assert module_salt["event.send"].call_args.args[1]["ended"] == sorted(["mongo", SENSOR])
    assert heal_mod.maintenance("status") == {}


def test_maintenance_status_changes_nothing(module_salt, cachedir):
    assert heal_mod.maintenance() == {}
    assert not (cachedir / "energy" / "maintenance.json").exists()
    module_salt["event.send"].assert_not_called()


@pytest.mark.parametrize("args, bad", [
    (("maybe", "all"), "bad action 'maybe'"),
    (("on", "nginx"), "bad target 'nginx'"),
    (("off", "Formula"), "bad target 'Formula'"),
])
def test_maintenance_rejects_bad_input_with_a_fix(args, bad, module_salt, cachedir):
    with pytest.raises(CommandExecutionError, match="Fix:") as info:
        heal_mod.maintenance(*args)
    assert bad in str(info.value)
    assert not (cachedir / "energy" / "maintenance.json").exists()
    module_salt["event.send"].assert_not_called()


@pytest.mark.parametrize("hours", [0, -1, "soon"])
def test_maintenance_rejects_bad_hours_with_a_fix(hours, module_salt):
    with pytest.raises(CommandExecutionError, match=r"bad hours .*Fix: a positive number"):
        heal_mod.maintenance("on", "formula", hours=hours)
    module_salt["event.send"].assert_not_called()


def test_held_names_the_window_of_the_container_its_component_or_all():
    assert heal_mod.held(FORMULA, "formula") == ""

    heal_mod.maintenance("on", "all", reason="datacenter move")
    reason = heal_mod.held(FORMULA, "formula")
    assert reason.startswith("maintenance on all since ") and "(datacenter move)" in reason
    assert reason.endswith(f"resume with: salt {MINION} energy_heal.maintenance off all")

    heal_mod.maintenance("on", "formula", hours=1)
    reason = heal_mod.held(FORMULA, "formula")
    assert reason.startswith("maintenance on formula since ") and " until " in reason
    assert heal_mod.held(SENSOR, "sensor").startswith("maintenance on all ")  # other components: 'all'

    heal_mod.maintenance("on", FORMULA, reason="debugging")
    assert heal_mod.held(FORMULA, "formula").startswith(f"maintenance on {FORMULA} since ")

    heal_mod.maintenance("off", "all")
    assert heal_mod.held(FORMULA, "formula") == ""


def test_held_ignores_an_ended_window(cachedir):
    now = time.time()
    heal_mod.maintenance_core.write(str(cachedir / "energy" / "maintenance.json"),
                                      {"formula": {"reason": "", "since": now - 7200, "until": now - 3600}})
    assert heal_mod.held(FORMULA, "formula") == ""
    assert heal_mod.maintenance("status") == {}



# --------------------------------------------------------------------------- energy_heal.react


def formula_spec():
    return next(c for c in energy_mod.node(secrets=True)["containers"] if c["name"] == FORMULA)


def test_react_skips_when_the_engine_file_is_absent(module_salt, engine_path):
    ret = heal_mod.react(FORMULA, "die")
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == f"event-driven healing is off on this minion ({engine_path} is absent)"
    assert heal_mod.engine_file() == str(engine_path)
    module_salt["energy_health.check"].assert_not_called()


def test_react_skips_when_event_healing_is_off(module_salt, pillar, engine_on):
    pillar["energy"]["heal"] = {"events": {"enabled": False}}
    ret = heal_mod.react(FORMULA, "die")
    assert ret["result"] is True
    assert ret["comment"] == "energy:heal:events:enabled is false"
    module_salt["energy_health.check"].assert_not_called()


@pytest.mark.parametrize("name", ["energy-node-b-formula-intel_xeon", "energy-node-a-formula-amd_epyc", "nginx"])
def test_react_skips_a_name_not_in_this_minions_plan(name, module_salt, engine_on):
    ret = heal_mod.react(name, "destroy")
    assert ret["result"] is True
    assert ret["comment"] == "not a container of this minion's plan: left alone"
    module_salt["energy_health.check"].assert_not_called()


def test_react_skips_a_component_not_healed(module_salt, pillar, engine_on):
    pillar["energy"]["heal"] = {"components": ["sensor", "mongo"]}
    ret = heal_mod.react(FORMULA, "die")
    assert ret["comment"] == "formula is not in energy:heal:components: left alone"
    module_salt["energy_health.check"].assert_not_called()


@pytest.mark.parametrize("status", ["running"])
def test_react_leaves_a_running_container_alone_before_computing_any_plan(status, module_salt, engine_on):
    # a forged or stale event: Docker still runs the container, so the minion does no more work
    module_salt["docker.inspect_container"] = mock.MagicMock(return_value=inspected(status))
    ret = heal_mod.react(FORMULA, "die")
    assert ret == {"result": True, "changes": {}, "comment": "still running: nothing to recreate"}
    module_salt["energy_health.check"].assert_not_called()
    module_salt["mine.get"].assert_not_called()


@pytest.mark.parametrize("status", ["exited", "dead", "restarting", None])
def test_react_recreates_a_container_that_is_not_running_or_missing(status, module_salt, engine_on):
    if status is None:
        module_salt["docker.inspect_container"] = mock.MagicMock(side_effect=Exception("No such container"))
    else:
        module_salt["docker.inspect_container"] = mock.MagicMock(return_value=inspected(status))
    heal_mod.react(FORMULA, "destroy")
    module_salt["energy_health.check"].assert_called_once()


def test_react_runs_the_container_through_the_healing_pipeline(module_salt, engine_on):
    spec = formula_spec()
    assert spec["health"]  # the formula's backlog probe: what the pipeline must check
    ret = heal_mod.react(FORMULA, "die")
    assert ret is module_salt["energy_health.check"].return_value
    module_salt["energy_health.check"].assert_called_once_with(
        FORMULA, "formula", spec["run"], probe=spec["health"], grace=90, timeout=60, trigger="docker die event")
    assert "retcode" not in heal_mod.__context__


def test_react_passes_the_action_and_pillar_timings_on(module_salt, pillar, engine_on):
    pillar["energy"]["heal"] = {"grace_seconds": 5, "timeout": 7}
    heal_mod.react(SENSOR, "destroy")
    kwargs = module_salt["energy_health.check"].call_args.kwargs
    assert module_salt["energy_health.check"].call_args.args[:2] == (SENSOR, "sensor")
    assert (kwargs["grace"], kwargs["timeout"], kwargs["trigger"]) == (5, 7, "docker destroy event")
    assert "fresh" in kwargs["probe"]


def test_react_fails_the_job_when_the_recreation_fails(module_salt, engine_on):
    module_salt["energy_health.check"].return_value = {"status": "recreated", "result": False, "changes": {},
                                                       "comment": "recreated ..., but it is still unhealthy"}
    heal_mod.react(FORMULA, "die")
    assert heal_mod.__context__["retcode"] == 1


def test_react_leaves_the_container_to_the_job_holding_its_lock(module_salt, cachedir, engine_on):
    lock_path = cachedir / "energy" / f"react-{FORMULA}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w", encoding="utf-8") as held_lock:
        fcntl.flock(held_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the first job, recreating it
        ret = heal_mod.react(FORMULA, "destroy")
    assert ret == {"result": True, "changes": {}, "comment": "another job is recreating it already"}
    module_salt["energy_health.check"].assert_not_called()
    # the lock is the container's, not the module's: once released, the next event recreates
    heal_mod.react(FORMULA, "destroy")
    module_salt["energy_health.check"].assert_called_once()



# --------------------------------------------------------------------------- secrets


def test_no_secret_leaves_the_minion_in_a_return(engine_on):
    secret = "unit-test-secret"
    for name, value in (("plan", energy_mod.plan()), ("node", energy_mod.node()),
                        ("summary", energy_mod.summary()), ("config", energy_mod.config())):
        assert secret not in repr(value), name
    assert "***" in repr(energy_mod.config()) and "***" in repr(energy_mod.plan())
    # the formula's own SLS files get the real value, to give it to Grafana
    (grafana,) = [c for c in energy_mod.node(secrets=True)["containers"] if c["component"] == "grafana"]
    assert grafana["run"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == secret




def test_the_light_check_runs_each_healed_container_through_the_pipeline(module_salt, pillar):
    pillar["energy"]["heal"] = {"components": ["formula", "sensor"]}
    answers = {FORMULA: {"status": "recreated", "comment": "recreated formula container ..."},
               SENSOR: {"status": "left", "comment": "sensor container ... is unhealthy: ...; left as it is"}}
    module_salt["energy_health.check"].side_effect = lambda name, *a, **kw: dict(
        answers.get(name, {"status": "healthy", "comment": ""}), result=True, changes={})
    found = heal_mod.heal_check()
    assert found == {"healthy": [], "held": [], "left": {SENSOR: answers[SENSOR]["comment"]},
                     "recreated": {FORMULA: answers[FORMULA]["comment"]}}
    assert sorted(c.args[0] for c in module_salt["energy_health.check"].call_args_list) == sorted([FORMULA, SENSOR])
    assert {c.kwargs["trigger"] for c in module_salt["energy_health.check"].call_args_list} == {"heal schedule"}


def test_the_light_check_leaves_a_container_another_job_holds_to_that_job(module_salt, pillar):
    pillar["energy"]["heal"] = {"components": ["formula"]}
    busy = f"formula container {FORMULA} left to the other job: another job of this minion has been recreating it"
    module_salt["energy_health.check"].side_effect = lambda name, *a, **kw: {
        "status": "busy", "result": False, "changes": {}, "comment": busy}
    assert heal_mod.heal_check() == {"healthy": [], "held": [], "left": {FORMULA: busy}, "recreated": {}}


# --------------------------------------------------------------------------- energy_archive.restore_influxdb


def _answers(monkeypatch, *answers):
    """core.influx.counts answers these in turn (an exception is raised), the last one ever after."""
    asked = []

    def counts(url, database, where=""):
        asked.append(database)
        answer = answers[min(len(asked), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(archive_mod.influx, "counts", counts)
    monkeypatch.setattr(archive_mod.time, "sleep", lambda seconds: None)
    return asked


def test_a_restored_copy_is_read_once_influxdb_shows_every_point_of_the_manifest(monkeypatch):
    # right after influxd restore, InfluxDB answers nothing, then "shard is disabled", then part
    asked = _answers(monkeypatch, {}, RuntimeError("shard is disabled"), TimeoutError("timed out"),
                     {"power_consumption": 4}, {"power_consumption": 10})
    assert archive_mod._restored("http://x", "tmp", {"power_consumption": 10}, 60) == {"power_consumption": 10}
    assert asked == ["tmp"] * 5


def test_a_restored_copy_that_never_shows_its_points_fails_naming_what_is_missing(monkeypatch):
    _answers(monkeypatch, {"power_consumption": 3})
    with pytest.raises(CommandExecutionError) as error:
        archive_mod._restored("http://x", "power_e5_restore_1", {"power_consumption": 10}, 0)
    assert "power_e5_restore_1" in str(error.value) and "power_consumption: 3 of 10" in str(error.value)
    assert "nothing was copied" in str(error.value)


def test_without_a_manifest_count_the_restore_waits_for_two_equal_answers(monkeypatch):
    asked = _answers(monkeypatch, {}, {"power_consumption": 5}, {"power_consumption": 7}, {"power_consumption": 7})
    assert archive_mod._restored("http://x", "tmp", {}, 60) == {"power_consumption": 7}
    assert len(asked) == 4


# --------------------------------------------------------------------------- once per job


def _proc_file(cachedir, jid, pid):
    import salt.payload  # pylint: disable=import-outside-toplevel

    proc = cachedir / "proc"
    proc.mkdir(exist_ok=True)
    (proc / jid).write_bytes(salt.payload.dumps({"jid": jid, "pid": pid, "fun": "state.apply"}))


def test_the_job_id_is_read_from_this_process_s_own_proc_file(cachedir):
    assert energy_mod._job_id() is None  # no proc directory: not in a job
    _proc_file(cachedir, "20261127000000000001", 1)  # another job (salt.utils.minion.running would list only it)
    assert energy_mod._job_id() is None
    _proc_file(cachedir, "20261127000000000002", os.getpid())
    assert energy_mod._job_id() == "20261127000000000002"


def test_a_job_computes_the_plan_and_the_orphans_once(module_salt, cachedir):
    module_salt["docker.ps"] = mock.MagicMock(return_value={})
    _proc_file(cachedir, "20261127000000000003", os.getpid())
    conf = energy_mod.config(secrets=True)
    for _ in range(3):  # one state run: each component's orphans_absent, each SLS's plan
        assert energy_mod.orphans(conf) == []
        energy_mod.node(conf)
    assert module_salt["docker.ps"].call_count == 1
    mine_calls = module_salt["mine.get"].call_count
    energy_mod.node(conf)
    assert module_salt["mine.get"].call_count == mine_calls  # kept for the job
    (cachedir / "proc" / "20261127000000000003").unlink()
    _proc_file(cachedir, "20261127000000000004", os.getpid())  # the next job asks again
    energy_mod.orphans(conf)
    assert module_salt["docker.ps"].call_count == 2


def test_the_plan_asks_the_mine_once_when_every_role_names_its_minions(module_salt, pillar):
    # the default roles: sensors '*', the others energy:control (an id)
    energy_mod.plan()
    assert [c.args[0] for c in module_salt["mine.get"].call_args_list] == ["*"]
    module_salt["mine.get"].reset_mock()
    pillar["energy"]["roles"] = {"mongos": "G@rack:4", "influxdbs": "G@rack:4", "formulas": [MINION]}
    energy_mod.plan()  # a grain match is the master's to make: asked as it is, once
    assert sorted(c.args[0] for c in module_salt["mine.get"].call_args_list) == ["*", "G@rack:4"]


def test_under_threads_the_job_id_is_the_one_the_thread_is_named_after(module_opts, cachedir):
    import threading  # pylint: disable=import-outside-toplevel

    module_opts["multiprocessing"] = False  # every job runs in the minion's own process
    _proc_file(cachedir, "20261127000000000005", os.getpid())
    assert energy_mod._job_id() is None  # this thread is not that job's
    found = []
    worker = threading.Thread(target=lambda: found.append(energy_mod._job_id()),
                              name="ProcessPayload(jid=20261127000000000005)")
    worker.start()
    worker.join()
    assert found == ["20261127000000000005"]


def test_only_an_empty_directory_is_a_stray_mount_source(tmp_path):
    # Docker makes an empty directory at a missing bind source; anything else is left alone
    (tmp_path / "made.json").mkdir()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "data").write_text("x")
    (tmp_path / "file.json").write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "made.json")
    assert energy_mod.empty_dir(str(tmp_path / "made.json")) is True
    for other in ("kept", "file.json", "missing", "link"):
        assert not energy_mod.empty_dir(str(tmp_path / other)), other
