"""No Salt warning of the formula's making: what the runners create to reach Salt (the master's
client that reads the mine, local clients, event buses) is destroyed or used as a context manager,
so Salt logs no ``unclosed MasterMinion`` / ``unclosed MasterEvent`` / ``unclosed RunnerClient``
after them. Salt's own runner ``mine.get`` leaves such a client behind on every call (Salt 3008.3):
the runners read the mine through ``energy.mine`` instead.

Through Salt's real runner loader and Salt's real master client (``RemoteFuncs``), on a master
configuration with a mine in its cache and no daemon."""

import gc
import logging
import os
import warnings

import pytest
import salt.cache
import salt.loader

from tests.functional.test_runner_trust import MINE, master_opts  # noqa: F401  pylint: disable=unused-import

UNCLOSED = "unclosed "


@pytest.fixture
def runners(master_opts):  # noqa: F811
    for minion, facts in MINE.items():  # accepted minions with their facts in the master's mine
        _accept(master_opts, minion)
        salt.cache.factory(master_opts).store("mine", minion, {"energy.facts": facts})
    return salt.loader.runner(master_opts, utils=salt.loader.utils(master_opts))


def _accept(opts, minion):
    os.makedirs(os.path.join(opts["pki_dir"], "minions"), exist_ok=True)
    with open(os.path.join(opts["pki_dir"], "minions", minion), "w", encoding="utf-8") as handle:
        handle.write("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n")


def unclosed(caplog, call):
    """What ``call`` returns, and the unclosed-resource warnings Salt gave once its objects are gone."""
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = call()
        gc.collect()
    found = [r.getMessage() for r in caplog.records if UNCLOSED in r.getMessage()]
    found += [str(w.message) for w in caught if UNCLOSED in str(w.message)]
    return result, found


def test_the_mine_is_read_without_leaving_a_client(runners, caplog):
    facts, found = unclosed(caplog, lambda: runners["energy.mine"]("*"))
    assert sorted(facts) == sorted(MINE)
    assert found == []


def test_the_masters_plan_leaves_no_client(runners, caplog):
    plan, found = unclosed(caplog, runners["energy.plan"])
    assert sorted(plan["hosts"]) == sorted(MINE)
    assert found == []


def test_salts_own_mine_runner_would_leave_one(runners, caplog):
    """The check sees what it looks for: Salt's mine.get runner, called as the runners once did."""
    facts, found = unclosed(caplog, lambda: runners["mine.get"]("*", "energy.facts"))
    assert sorted(facts) == sorted(MINE)
    assert any("MasterMinion" in f or "MasterEvent" in f for f in found), found
