"""The plan computed on the master and handed to each minion, through Salt's real runner loader and
pillar compiler: ``salt-run energy_plan.prepare`` keeps each minion's part, and the ``energy_plan``
ext_pillar gives each minion its own, and nothing of another's."""

import copy
import json
from unittest import mock

import pytest
import salt.loader
import salt.pillar
import yaml

from tests.conftest import ROOT
from tests.functional.test_runner_trust import PILLAR, FakeRemoteFuncs, master_opts  # noqa: F401  (a fixture)


@pytest.fixture
def opts(master_opts):  # noqa: F811
    master_opts = dict(master_opts, ext_pillar=[{"energy_plan": {}}], pillar_dirs=[str(ROOT / "_pillar")])
    return master_opts


def runners(opts):
    return salt.loader.runner(opts, utils=salt.loader.utils(opts))


def pillar_of(opts, minion):
    return salt.pillar.Pillar(opts, {}, minion, "base").compile_pillar()


def test_each_minion_gets_its_own_part_and_no_other_secret(opts):
    with mock.patch("salt.daemons.masterapi.RemoteFuncs", FakeRemoteFuncs):
        ret = runners(opts)["energy_plan.prepare"]()
    assert ret["result"] is True and ret["minions"] == 2 and ret["local"] == []
    grafana_password = PILLAR["energy"]["grafana"]["admin_password"]
    assert grafana_password not in json.dumps(ret)
    node_a, ctl = pillar_of(opts, "node-a")["energy_plan"], pillar_of(opts, "ctl")["energy_plan"]
    assert node_a["minion"] == "node-a" and {c["minion"] for c in node_a["containers"]} == {"node-a"}
    assert [c["component"] for c in node_a["containers"]] == ["sensor"]
    assert grafana_password not in json.dumps(node_a) and grafana_password in json.dumps(ctl)
    assert node_a["config"]["grafana"]["admin_password"] == "***"
    assert "energy_plan" not in pillar_of(opts, "stranger")
    # the reactor's view: names only
    kept = runners(opts)["energy_plan.kept"]()
    assert set(kept["containers"]) == {"ctl", "node-a"} and grafana_password not in json.dumps(kept)


def test_without_the_ext_pillar_the_plan_step_fails_with_the_fix(master_opts):  # noqa: F811
    with mock.patch("salt.daemons.masterapi.RemoteFuncs", FakeRemoteFuncs):
        ret = runners(master_opts)["energy_plan.prepare"]()
    assert ret["result"] is False and "ext_pillar: [{energy_plan: {}}]" in ret["error"]


def test_a_bad_pillar_stops_the_plan_step_naming_the_key(opts, tmp_path):
    bad = copy.deepcopy(PILLAR)
    bad["energy"]["mongo"]["port"] = 70000
    (tmp_path / "pillar" / "energy.sls").write_text(yaml.safe_dump(bad))
    with mock.patch("salt.daemons.masterapi.RemoteFuncs", FakeRemoteFuncs):
        ret = runners(opts)["energy_plan.prepare"]()
    assert ret["result"] is False and "energy:mongo:port: bad value 70000" in ret["error"]
    assert PILLAR["energy"]["mongo"]["admin_password"] not in ret["error"]


def test_the_orch_targets_read_the_masters_configuration(opts):
    loaded = runners(opts)
    conf = loaded["energy_plan.config"]()
    assert conf["control"] == "ctl" and conf["mongo"]["admin_password"] == "***"


def test_rebalance_shows_a_canonical_placement_equal_to_a_fresh_deploy(opts):
    with mock.patch("salt.daemons.masterapi.RemoteFuncs", FakeRemoteFuncs):
        loaded = runners(opts)
        loaded["energy_plan.prepare"]()
        ret = loaded["energy_plan.rebalance"]()
    assert ret["result"] is True and ret["differs"] == {} and ret["moves"] == []
    assert ret["comment"] == "the current placement is the canonical one"
