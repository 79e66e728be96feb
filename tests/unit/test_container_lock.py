"""energy_core.container_lock: one job of a minion at a time recreates a container (the heal
schedule's check, a reaction and a state run found it dead together: two docker_container.running
replacing one container fail with a name conflict and leave a temporary container behind)."""

import importlib.util
import multiprocessing
import time

import pytest

from energy_core import container_lock


def _hold(cachedir, name, seconds, ready):
    with container_lock.held(cachedir, name):
        ready.set()
        time.sleep(seconds)


def test_a_second_job_waits_for_the_first_then_gets_the_lock(tmp_path):
    ready = multiprocessing.Event()
    other = multiprocessing.Process(target=_hold, args=(str(tmp_path), "energy-a-formula-x", 1.0, ready))
    other.start()
    assert ready.wait(10)
    started = time.monotonic()
    with container_lock.held(str(tmp_path), "energy-a-formula-x", wait=10):
        waited = time.monotonic() - started
    other.join()
    assert 0.3 < waited < 5  # it waited for the other job, no longer


def test_a_job_that_holds_it_too_long_makes_the_other_give_up_naming_the_container(tmp_path):
    ready = multiprocessing.Event()
    other = multiprocessing.Process(target=_hold, args=(str(tmp_path), "energy-a-mongo-x", 3.0, ready))
    other.start()
    try:
        assert ready.wait(10)
        with pytest.raises(container_lock.Busy, match="energy-a-mongo-x"):
            with container_lock.held(str(tmp_path), "energy-a-mongo-x", wait=0.5):
                pass
        with container_lock.held(str(tmp_path), "energy-a-sensor", wait=0.5):  # another container: free
            pass
    finally:
        other.join()


def test_re_entrant_in_one_thread_also_across_fresh_copies_of_the_core(tmp_path):
    """The heal state takes the lock, then the container state it calls takes it again, each with
    its own copy of the core (energy_core.load imports it afresh for every Salt module)."""
    with container_lock.held(str(tmp_path), "energy-a-influxdb-x", wait=0.5):
        # energy_core.load() drops the core from sys.modules (other tests call it): a fresh copy
        # read from the same file, as load() gives each Salt module, not importlib.reload
        spec = importlib.util.spec_from_file_location("fresh_container_lock", container_lock.__file__)
        fresh = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fresh)
        assert fresh is not container_lock
        with fresh.held(str(tmp_path), "energy-a-influxdb-x", wait=0.5):
            pass


def test_lock_files_stay_under_the_cachedir_whatever_the_name(tmp_path):
    assert container_lock.path(str(tmp_path), "../../etc/passwd").startswith(str(tmp_path / "energy" / "locks"))
    assert "/" not in container_lock.path(str(tmp_path), "a/b").rsplit("locks/", 1)[1]


@pytest.mark.parametrize("heal, wait", [
    (None, container_lock.STATE_WAIT_SECONDS),
    ({"timeout": 60, "grace_seconds": 90}, 210.0),  # the defaults
    ({"timeout": 10, "grace_seconds": 5}, container_lock.STATE_WAIT_SECONDS),
    ({"timeout": 3600, "grace_seconds": 90}, 3750.0),  # a slow service: the heal job may hold it that long
    ({"timeout": "x"}, container_lock.STATE_WAIT_SECONDS),
])
def test_a_state_waits_as_long_as_a_heal_job_may_hold_the_lock(heal, wait):
    assert container_lock.state_wait(heal) == wait
