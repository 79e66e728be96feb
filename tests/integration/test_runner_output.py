"""The runners print no Salt warning of the formula's making, on the real master with the deployed
test stack: each ``salt-run energy.*`` prints (console log level warning, as a user sees it) the
same ``unclosed ...`` warnings as ``salt-run test.arg``, which are salt-run's own (Salt 3008.3
leaves an unclosed Runner and MasterMinion at every salt-run), and no other.

salt-run runs as a user runs it, not through pytest-salt-factories' CLI wrapper: what Salt logs
while the process exits (a client collected then) is part of what the user reads.

The orch is not compared: Salt's own orchestrate machinery (state.orchestrate, and the clients of
its salt.state, salt.function and salt.runner steps and saltutil.runner) leaves such clients
behind whatever the orchestrate file; tests/functional/test_clean_output.py shows the runners'
own code paths leave none."""

import pathlib
import re
import subprocess
import sys

RUNNERS = (["energy.plan"], ["energy.mine"], ["energy.summary"], ["energy.summary", "format=json"],
           ["energy_lock.status"])


def salt_run(salt_master, *args):
    """salt-run as a user runs it: its output and the 'unclosed ...' warnings it printed."""
    done = subprocess.run([str(pathlib.Path(sys.executable).parent / "salt-run"), "-c", str(salt_master.config_dir),
                           "--log-level=warning", *args], capture_output=True, text=True, timeout=600, check=False)
    return done, sorted(re.findall(r"unclosed (\w+) <", f"{done.stdout}\n{done.stderr}"))


def test_each_runner_prints_only_what_salt_run_itself_prints(deployed, salt_master):
    _, baseline = salt_run(salt_master, "test.arg", "x")
    assert baseline, "salt-run printed none of its own warnings: this check would see nothing"
    for args in RUNNERS:
        done, found = salt_run(salt_master, *args)
        assert done.returncode == 0, (args, done.stderr[-2000:])
        assert found == baseline, (args, done.stderr[-3000:])


def test_the_check_sees_a_leaked_client(deployed, salt_master):
    """Salt's mine.get runner leaves its master client behind: the comparison above would see it."""
    _, baseline = salt_run(salt_master, "test.arg", "x")
    done, found = salt_run(salt_master, "mine.get", "*", "energy.facts")
    assert done.returncode == 0
    assert len(found) > len(baseline), done.stderr[-2000:]
