"""energy_core.orch_lock: one energy.orch or energy.clean_orch at a time on a master."""

import json
import os
import threading

from energy_core import orch_lock

ME = {"jid": "20261205100000000002", "pid": 4242, "what": "energy.clean_orch", "since": 1_800_000_100.0}
HELD = {"jid": "20261205100000000001", "pid": 4141, "what": "energy.orch", "since": 1_800_000_000.0}


def test_a_free_lock_is_taken_silently():
    assert orch_lock.decide(None, ME, [], "/c/energy/orch.lock") == ("take", "")


def test_a_lock_of_a_running_job_refuses_naming_the_job_and_how_to_clear_it():
    verdict, message = orch_lock.decide(HELD, ME, [HELD["jid"], ME["jid"]], "/c/energy/orch.lock")
    assert verdict == "refuse"
    assert message.startswith("energy.clean_orch refused, nothing was touched: energy.orch (jid 20261205100000000001, "
                              "pid 4141, since ")
    assert "holds /c/energy/orch.lock" in message
    assert "salt-run jobs.kill 20261205100000000001" in message
    assert orch_lock.RELEASE in message


def test_a_lock_whose_job_no_longer_runs_is_taken_over_and_said_so():
    verdict, note = orch_lock.decide(HELD, ME, [ME["jid"]], "/c/energy/orch.lock")
    assert verdict == "take"
    assert "energy.orch (jid 20261205100000000001" in note and "no longer runs on this master" in note
    assert "taken over by energy.clean_orch (jid 20261205100000000002" in note


def test_the_holder_takes_its_own_lock_again():
    assert orch_lock.decide(dict(HELD), dict(HELD, what="energy.orch"), [HELD["jid"]], "/l") == ("take", "")


def test_a_step_holds_the_lock_for_its_orchestrate_job_not_for_itself():
    running = [{"jid": "3", "pid": 10, "fun": "energy_lock.take"},     # the step itself
               {"jid": "2", "pid": 10, "fun": "state.orchestrate"},    # the orch it belongs to
               {"jid": "1", "pid": 11, "fun": "state.orchestrate"}]    # another orch, another process
    assert orch_lock.holder_of(running, 10, "3") == "2"
    # called by hand: no orchestrate job in this process, the step's own jid
    assert orch_lock.holder_of(running, 12, "9") == "9"
    # nested runner calls of one orch: the oldest orchestrate job of the process
    assert orch_lock.holder_of(running + [{"jid": "4", "pid": 10, "fun": "runner.state.orchestrate"}], 10, "3") == "2"


def test_an_unreadable_lock_names_its_path_and_holds_nobody(tmp_path):
    path = tmp_path / "orch.lock"
    assert orch_lock.read(str(path)) == (None, "")
    path.write_text("{not json")
    held, problem = orch_lock.read(str(path))
    assert held is None and problem.startswith(f"{path} is not a lock this formula wrote")
    path.write_text("[]")
    assert orch_lock.read(str(path))[0] is None


def test_written_lock_reads_back_private(tmp_path):
    path = str(tmp_path / "energy" / "orch.lock")
    orch_lock.write(path, HELD)
    assert orch_lock.read(path) == (HELD, "")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    orch_lock.remove(path)
    orch_lock.remove(path)  # twice: nothing to remove is fine
    assert not os.path.exists(path)


def test_two_takers_at_once_one_wins(tmp_path):
    """The read-decide-write is guarded: of two orchs that start together, one finds the other's lock."""
    path = str(tmp_path / "energy" / "orch.lock")
    verdicts, barrier = [], threading.Barrier(2)

    def take(jid):
        barrier.wait()
        with orch_lock.guarded(path):
            held, _ = orch_lock.read(path)
            verdict, _ = orch_lock.decide(held, {"jid": jid, "pid": 1, "what": jid}, ["a", "b"], path)
            if verdict == "take":
                orch_lock.write(path, {"jid": jid, "pid": 1, "what": jid})
            verdicts.append(verdict)

    threads = [threading.Thread(target=take, args=(jid,)) for jid in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(verdicts) == ["refuse", "take"]
    with open(path, encoding="utf-8") as handle:
        assert json.load(handle)["jid"] in ("a", "b")
