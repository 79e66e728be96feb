"""Event-driven recovery, the pure parts: the minion's engine config, the master's reactor config
(both must keep what the main config file has: Salt replaces a top-level key with a .d file's),
maintenance windows, and when a salt-master can be restarted."""

import time

import pytest
import yaml

from energy_core import healing, maintenance
OURS = {"energy/docker/*": ["salt://energy/reactor/heal.sls"]}


def engine_names(config):
    return [e if isinstance(e, str) else next(iter(e)) for e in config["engines"]]


@pytest.mark.parametrize("main", [None, [], ["pytest"], [{"pytest": {"port": 1}}], {"pytest": {"port": 1}}])
def test_engine_config_keeps_the_main_configs_engines(main):
    config = healing.engine_config("node-a", main)
    kept = [] if not main else ["pytest"]
    assert engine_names(config) == kept + ["energy-container-names", "energy-docker-events"]
    assert config["engines"][-2]["energy-container-names"] == {"engine_module": "energy_names"}
    ours = config["engines"][-1]["energy-docker-events"]
    assert ours["engine_module"] == "docker_events" and ours["tag"] == "energy/docker"
    assert ours["filters"] == {"type": ["container"], "event": ["die", "destroy"], "label": ["energy.minion=node-a"]}
    if isinstance(main, dict):  # the dict form of engines becomes the list form, settings kept
        assert config["engines"][0] == {"pytest": {"port": 1}}


def test_engine_config_replaces_an_older_copy_of_itself():
    old = healing.engine_config("node-a")["engines"]
    old[-1]["energy-docker-events"]["filters"]["event"] = ["die"]
    config = healing.engine_config("node-a", ["pytest"] + old)
    assert engine_names(config) == ["pytest", "energy-container-names", "energy-docker-events"]
    assert config["engines"][-1]["energy-docker-events"]["filters"]["event"] == ["die", "destroy"]


@pytest.mark.parametrize("main", [None, [{"salt/auth": ["/srv/reactor/auth.sls"]}],
                                  {"salt/auth": ["/srv/reactor/auth.sls"]}])
def test_reactor_config_keeps_the_main_configs_reactions(main):
    reactions = yaml.safe_load(healing.reactor_config(main))["reactor"]
    kept = [] if not main else [{"salt/auth": ["/srv/reactor/auth.sls"]}]
    assert reactions == kept + [OURS]


def test_reactor_config_is_idempotent_and_removable():
    first = healing.reactor_config([{"salt/auth": ["a.sls"]}])
    # a main config that already lists the formula's reaction does not get it twice
    again = healing.reactor_config(yaml.safe_load(first)["reactor"])
    assert again == first
    assert healing.reactor_config([{"salt/auth": ["a.sls"]}], enabled=False) is None


@pytest.mark.parametrize("raw, expected", [
    # the title Salt gives its processes: argv joined by spaces, then " MainProcess"
    (b"/opt/venv/bin/python /opt/venv/bin/salt-master -c /etc/salt -d MainProcess\0",
     ["/opt/venv/bin/python", "/opt/venv/bin/salt-master", "-c", "/etc/salt", "-d"]),
    (b"/usr/bin/python3\0/usr/bin/salt-master\0-d\0", ["/usr/bin/python3", "/usr/bin/salt-master", "-d"]),
    (b"", []),
])
def test_a_masters_command_line_from_proc(raw, expected):
    assert healing.parse_cmdline(raw) == expected


@pytest.mark.parametrize("pid, command, systemd, expected", [
    (None, ["salt-master", "-d"], True, None),          # no running master found
    (42, ["/usr/bin/salt-master"], True, "systemd"),
    (42, ["python3", "/usr/bin/salt-master", "-c", "/etc/salt", "-d"], False, "daemon mode, same command line"),
    (42, ["salt-master", "--daemon"], False, "daemon mode, same command line"),
    (42, ["salt-master", "-c", "/tmp/master"], False, None),  # foreground under a harness: left alone
])
def test_when_a_master_can_be_restarted(pid, command, systemd, expected):
    assert healing.how_to_restart(pid, command, systemd) == expected


def test_held_reason_checks_the_container_then_its_component_then_all():
    now = time.time()
    entries = {"formula": {"since": now, "until": now + 3600, "reason": "new model"},
               "all": {"since": now, "until": None, "reason": ""}}
    reason = maintenance.held_reason(entries, "energy-node-a-formula-xeon", "formula", "node-a")
    assert reason.startswith("maintenance on formula since ") and " until " in reason
    assert "(new model)" in reason and reason.endswith("salt node-a energy_heal.maintenance off formula")
    reason = maintenance.held_reason(entries, "energy-node-a-sensor", "sensor", "node-a")
    assert reason.startswith("maintenance on all since ") and " until " not in reason and "()" not in reason
    entries["energy-node-a-sensor"] = {"since": now, "until": None, "reason": "disk"}
    assert maintenance.held_reason(entries, "energy-node-a-sensor", "sensor", "node-a").startswith(
        "maintenance on energy-node-a-sensor since")
    assert maintenance.held_reason({}, "energy-node-a-sensor", "sensor", "node-a") == ""


def test_two_runs_that_find_the_engine_missing_restart_the_minion_once(tmp_path):
    now = time.time()
    assert healing.restart_pending(str(tmp_path), now) is False  # the first run restarts it
    assert healing.restart_pending(str(tmp_path), now + 30) is True  # the schedule, 30 s later, does not
    assert healing.restart_pending(str(tmp_path), now + 300) is False  # a restart long after is a new one


def test_the_engine_takes_a_minion_restart_when_its_config_file_comes_goes_or_changes():
    assert healing.engine_restart(True, True, "a", "a") is None  # loaded, unchanged
    assert healing.engine_restart(False, False, None, None) is None  # off, no file
    assert healing.engine_restart(True, False, None, "a") == "start"
    assert healing.engine_restart(True, True, "a", "b") == "reload"
    assert healing.engine_restart(False, True, "a", None) == "stop"
    warning, comment = healing.restart_needed("node-a", "start", False)
    assert warning.startswith("restart salt-minion on node-a to start the docker_events engine "
                              "(energy:heal:events:restart_minion is false)")
    assert comment == ("salt-minion needs a restart to start the docker_events engine "
                       "(energy:heal:events:restart_minion is false)")
    assert "no systemd" in healing.restart_needed("node-a", "stop", True)[1]
    assert healing.config_change("/f", None, "x", True) == ("/f would be written", {"old": None, "new": "/f"})
    assert healing.config_change("/f", "y", "x", False) == ("/f updated", {"old": "other content", "new": "/f"})
    assert healing.config_change("/f", "y", None, False) == ("/f removed", {"old": "/f", "new": None})
