"""The grain, the execution module and the state module through Salt's real loaders."""

import copy

import pytest
import salt.config
from salt.exceptions import CommandExecutionError
from saltfactories.utils.functional import Loaders

from tests.conftest import ROOT, formula_file_root


@pytest.fixture(scope="module")
def minion_opts(tmp_path_factory):
    root = tmp_path_factory.mktemp("minion")
    opts = salt.config.minion_config(None)
    opts.update({
        "id": "func-minion",
        "file_client": "local",
        "file_roots": {"base": [str(formula_file_root(root / "srv"))]},
        "grains_dirs": [str(ROOT / "_grains")],
        "module_dirs": [str(ROOT / "_modules")],
        "states_dirs": [str(ROOT / "_states")],
        "cachedir": str(root / "cache"),
        # minion_config(None) points extension_modules at the host's /var/cache/salt/minion/extmods:
        # modules synced there by any other run would shadow the formula's own
        "extension_modules": str(root / "cache" / "extmods"),
        "pki_dir": str(root / "pki"),
        "sock_dir": str(root / "sock"),
        "energy_facts": {"cpu_name": "Test CPU 9000", "rapl_domains": ["package"]},
        "pillar": {"energy": {"control": "ctl", "facts": {"address": "10.1.2.3"}, "mongo": {"port": 27100},
                              "grafana": {"admin_password": "functional-test"}}},
    })
    return opts


@pytest.fixture
def loaders(minion_opts):
    loaders = Loaders(copy.deepcopy(minion_opts))
    try:
        yield loaders
    finally:
        loaders.reset_state()


def test_grain_is_loaded_and_minion_config_overrides_it(loaders):
    energy = loaders.grains["energy"]
    assert energy["cpu_name"] == "Test CPU 9000"
    assert energy["rapl_domains"] == ["package"]
    assert energy["cgroup_version"] in (1, 2)


def test_facts_add_pillar_overrides_for_the_mine(loaders):
    facts = loaders.modules.energy.facts()
    assert facts["cpu_name"] == "Test CPU 9000"
    assert facts["address"] == "10.1.2.3"


def test_facts_fresh_read_the_pillar_as_compiled_now_not_as_loaded(minion_opts, tmp_path):
    """The orch's mine.send runs energy.facts fresh=True instead of refreshing every minion's pillar
    first: an energy:facts changed since the minion loaded its pillar is published at once."""
    (tmp_path / "top.sls").write_text("base:\n  '*':\n    - energy\n")
    (tmp_path / "energy.sls").write_text("energy:\n  facts:\n    address: 10.1.2.3\n")
    opts = copy.deepcopy(minion_opts)
    opts["pillar_roots"] = {"base": [str(tmp_path)]}
    loaders = Loaders(opts)
    try:
        assert loaders.modules.energy.facts()["address"] == "10.1.2.3"  # the pillar is loaded now
        (tmp_path / "energy.sls").write_text("energy:\n  facts:\n    address: 10.9.9.9\n")
        assert loaders.modules.energy.facts()["address"] == "10.1.2.3"  # as loaded
        assert loaders.modules.energy.facts(fresh=True)["address"] == "10.9.9.9"  # as compiled now
    finally:
        loaders.reset_state()


def test_config_merges_defaults_yaml_and_pillar(loaders):
    conf = loaders.modules.energy.config()
    assert conf["mongo"]["port"] == 27100  # pillar
    assert conf["influxdb"]["port"] == 8086  # defaults.yaml
    assert conf["mongo"]["image"] == "mongo"


def test_config_rejects_bad_pillar_naming_the_key(minion_opts):
    opts = copy.deepcopy(minion_opts)
    opts["pillar"] = {"energy": {"control": "ctl", "influxdb": {"port": "http"}, "grafana": {"enabled": False}}}
    loaders = Loaders(opts)
    try:
        with pytest.raises(CommandExecutionError, match=r"energy:influxdb:port: bad value 'http'"):
            loaders.modules.energy.config()
    finally:
        loaders.reset_state()


def test_reachable_passes_on_an_open_port(loaders, open_port):
    ret = loaders.states.energy.reachable(f"mongodb://127.0.0.1:{open_port}", service="mongo for X")
    assert ret.result is True
    assert "answers" in ret.comment


def test_reachable_fails_naming_service_and_minion(loaders, closed_port):
    ret = loaders.states.energy.reachable(f"mongodb://127.0.0.1:{closed_port}", service="mongo for X", timeout=1)
    assert ret.result is False
    assert "mongo for X" in ret.comment and "func-minion" in ret.comment


def test_the_split_modules_and_states_load_under_their_own_names(loaders):
    # energy_heal and energy_archive were split from the energy module, the healing states from
    # the energy states: each loads by itself, with the core, under its own name
    assert loaders.modules.energy_heal.node_kept_file().endswith("energy/node.json")
    assert loaders.modules.energy_heal.held("energy-func-minion-sensor", "sensor") == ""
    assert "energy_archive.backup_influxdb" in loaders.modules
    for name in ("healthy", "node_kept", "stays_up", "events_engine"):
        assert f"energy_heal.{name}" in loaders.states, name
    assert "energy.container_running" in loaders.states


def test_the_inventory_module_loads_under_its_own_name(loaders):
    assert "energy_inventory.live" in loaders.modules and "energy_inventory.deployed" in loaders.modules
    assert loaders.modules.energy.components()[0]["name"] == "mongo"  # the table, in deploy order
