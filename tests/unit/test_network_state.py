"""energy_network.absent when minions that share an engine clean side by side: one removes the
network, the others find it gone (or used again) and say so instead of failing the clean."""

from unittest import mock

import pytest

from tests.unit.loader_mocks import _import

network_state = _import("_states", "energy_network")
UNUSED = {"Id": "a" * 64, "Name": "energy", "Containers": {}}
USED = {"Id": "a" * 64, "Name": "energy", "Containers": {"c" * 64: {"Name": "energy-node-a-sensor"}}}


@pytest.fixture
def docker(tmp_path, monkeypatch):
    """A Docker of one network whose listing the test scripts, call by call."""
    salt = {"docker.networks": mock.MagicMock(), "docker.inspect_network": mock.MagicMock(),
            "docker.remove_network": mock.MagicMock()}
    monkeypatch.setattr(network_state, "__salt__", salt, raising=False)
    monkeypatch.setattr(network_state, "__opts__", {"test": False, "cachedir": str(tmp_path)}, raising=False)
    monkeypatch.setattr(network_state.os, "access", lambda *_: False)  # the lock in tmp_path, not /run
    return salt


def listing(docker, *states):
    """docker.networks then docker.inspect_network answer ``states`` in turn (None: no network);
    a call past them fails the test (StopIteration)."""
    docker["docker.networks"].side_effect = [[{"Id": s["Id"], "Name": "energy"}] if s else [] for s in states]
    docker["docker.inspect_network"].side_effect = [s for s in states if s]


def test_an_unused_network_is_removed(docker):
    listing(docker, UNUSED, UNUSED)  # seen, seen again under the lock
    ret = network_state.absent("energy")
    assert ret["result"] is True and ret["changes"] == {"removed": "energy"}
    docker["docker.remove_network"].assert_called_once_with(UNUSED["Id"])


def test_a_network_another_minion_removed_meanwhile_is_absent_not_a_failure(docker):
    listing(docker, UNUSED, UNUSED, None)  # seen, seen again under the lock, gone after the 404
    docker["docker.remove_network"].side_effect = RuntimeError("404 Client Error: network energy not found")
    ret = network_state.absent("energy")
    assert ret["result"] is True and not ret["changes"]
    assert "removed by another minion" in ret["comment"]


def test_a_network_removed_before_the_lock_is_taken_is_not_removed_again(docker):
    listing(docker, UNUSED, None)
    ret = network_state.absent("energy")
    assert ret["result"] is True and not ret["changes"]
    docker["docker.remove_network"].assert_not_called()


def test_a_network_a_container_joined_meanwhile_is_kept(docker):
    listing(docker, UNUSED, UNUSED, USED)
    docker["docker.remove_network"].side_effect = RuntimeError("403: network energy has active endpoints")
    ret = network_state.absent("energy")
    assert ret["result"] is True and not ret["changes"]
    assert "energy-node-a-sensor" in ret["comment"]


def test_a_removal_that_fails_for_another_reason_fails_with_it(docker):
    listing(docker, UNUSED, UNUSED, UNUSED)
    docker["docker.remove_network"].side_effect = RuntimeError("500: the engine is shutting down")
    ret = network_state.absent("energy")
    assert ret["result"] is False and "the engine is shutting down" in ret["comment"]


def test_test_mode_removes_nothing(docker):
    network_state.__opts__["test"] = True
    listing(docker, UNUSED)
    ret = network_state.absent("energy")
    assert ret["result"] is None and ret["changes"] == {"removed": "energy"}
    docker["docker.remove_network"].assert_not_called()


def test_an_inspect_that_fails_otherwise_than_404_is_an_error_not_an_absent_network(docker):
    docker["docker.networks"].return_value = [{"Id": UNUSED["Id"], "Name": "energy"}]
    docker["docker.inspect_network"].side_effect = RuntimeError("Unable to perform inspect_network: Read timed out.")
    with pytest.raises(RuntimeError, match="Read timed out"):
        network_state.absent("energy")
    docker["docker.remove_network"].assert_not_called()


def test_an_inspect_that_answers_404_is_a_network_gone_meanwhile(docker):
    docker["docker.networks"].return_value = [{"Id": UNUSED["Id"], "Name": "energy"}]
    docker["docker.inspect_network"].side_effect = RuntimeError("Error 404: network aaaa not found")
    ret = network_state.absent("energy")
    assert ret["result"] is True and not ret["changes"]
    docker["docker.remove_network"].assert_not_called()


def test_duplicates_one_removed_here_one_by_another_minion_still_count_as_a_change(docker):
    other = dict(UNUSED, Id="b" * 64)
    states = [[UNUSED, other], [UNUSED, other], []]
    docker["docker.networks"].side_effect = [[{"Id": n["Id"], "Name": "energy"} for n in s] for s in states]
    docker["docker.inspect_network"].side_effect = [n for s in states for n in s]
    docker["docker.remove_network"].side_effect = [None, RuntimeError("Error 404: network bbbb not found")]
    ret = network_state.absent("energy")
    assert ret["result"] is True and ret["changes"] == {"removed": "energy"}


def test_a_bad_name_is_refused_with_the_pillar_key(docker):
    ret = network_state.absent("../etc/x")
    assert ret["result"] is False and "energy:network:name" in ret["comment"]
    docker["docker.networks"].assert_not_called()
