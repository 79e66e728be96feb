"""energy_core.load(): a Salt layer that binds ``from energy_core import names`` after it reads the
core as it is on disk now, as a long-lived salt-minion must after ``saltutil.sync_utils``.

Run in a process of its own: the test rewrites a copy of the core and reloads it."""

import os
import shutil
import subprocess
import sys
import textwrap
from unittest import mock

from tests.conftest import ROOT

LAYER = textwrap.dedent('''
    try:
        import energy_core

        energy_core.load()
        from energy_core import names
        CORE_ERROR = None
    except ImportError as exc:
        CORE_ERROR = str(exc)
''')

SCRIPT = textwrap.dedent('''
    import importlib.util, pathlib, sys
    utils, layer = pathlib.Path(sys.argv[1]), sys.argv[2]
    sys.path.insert(0, str(utils))

    def salt_loads():  # what Salt's loader does at each job: the layer's file executed afresh
        spec = importlib.util.spec_from_file_location("layer", layer)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.CORE_ERROR is None, module.CORE_ERROR
        return module

    first = salt_loads()
    assert not hasattr(first.names, "SYNCED_LATER")
    assert first.names is sys.modules["energy_core.names"]  # a plain name, the module itself
    with open(utils / "energy_core" / "names.py", "a", encoding="utf-8") as handle:
        handle.write("\\nSYNCED_LATER = 'new core'\\n")  # saltutil.sync_utils wrote a new core
    second = salt_loads()
    assert getattr(second.names, "SYNCED_LATER", None) == "new core", "the layer kept the core of an earlier job"
    assert not hasattr(first.names, "SYNCED_LATER")  # the earlier job's module is left as it was
    print("fresh")
''')


def test_a_layer_sees_the_core_synced_after_it_first_loaded(tmp_path):
    shutil.copytree(ROOT / "_utils" / "energy_core", tmp_path / "utils" / "energy_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "layer.py").write_text(LAYER)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "utils"), str(tmp_path / "layer.py")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "fresh", done.stderr[-3000:]


def test_without_load_a_plain_import_would_keep_the_old_core(tmp_path):
    # the guard of the test above: without energy_core.load() the second job sees the old module
    shutil.copytree(ROOT / "_utils" / "energy_core", tmp_path / "utils" / "energy_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "layer.py").write_text(LAYER.replace("    energy_core.load()\n", ""))
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "utils"), str(tmp_path / "layer.py")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "kept the core of an earlier job" in done.stderr


THREADS = textwrap.dedent('''
    import pathlib, sys, threading
    utils = pathlib.Path(sys.argv[1])
    sys.path.insert(0, str(utils))
    import energy_core

    energy_core.load()
    from energy_core import names
    first = names
    energy_core.load()
    from energy_core import names
    assert names is first, "an unchanged core was imported again"

    errors, started, synced = [], threading.Barrier(9), threading.Event()

    def job():  # what each reactor thread of a master does when Salt loads a layer
        started.wait()
        for turn in range(40):
            try:
                energy_core.load()
                from energy_core import names, schema, trust  # noqa: F401
            except Exception as exc:  # pylint: disable=broad-except
                errors.append(repr(exc))
            if turn == 5:
                synced.wait()

    workers = [threading.Thread(target=job) for _ in range(8)]
    for worker in workers:
        worker.start()
    started.wait()
    with open(utils / "energy_core" / "names.py", "a", encoding="utf-8") as handle:
        handle.write("\\nSYNCED_LATER = 'new core'\\n")  # one sync while the threads load
    synced.set()
    for worker in workers:
        worker.join()
    assert not errors, errors[:3]
    energy_core.load()
    from energy_core import names
    assert names.SYNCED_LATER == "new core"
    print("safe")
''')


def test_threads_loading_the_core_across_a_sync_all_succeed_and_an_unchanged_core_is_kept(tmp_path):
    # a master's reactor threads load the layers at once: dropping the core's modules while another
    # thread imported them failed that import (KeyError: 'energy_core.schema' in importlib)
    shutil.copytree(ROOT / "_utils" / "energy_core", tmp_path / "utils" / "energy_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-c", THREADS, str(tmp_path / "utils")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "safe", done.stderr[-3000:]


FORK = textwrap.dedent('''
    import os, pathlib, signal, sys, threading, time
    utils = pathlib.Path(sys.argv[1])
    sys.path.insert(0, str(utils))
    import energy_core

    energy_core.load()
    with open(utils / "energy_core" / "names.py", "a", encoding="utf-8") as handle:
        handle.write("\\nimport time\\ntime.sleep(2)\\n")  # a sync, and a slow import of it
    threading.Thread(target=energy_core.load).start()  # another thread of the minion imports it
    time.sleep(0.5)
    pid = os.fork()  # the minion forks a job meanwhile
    if pid == 0:
        signal.alarm(20)  # a child stuck on a lock of the parent's dies of it
        energy_core.load()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status))
''')


def test_a_job_forked_while_another_thread_imports_the_core_loads_it_too(tmp_path):
    shutil.copytree(ROOT / "_utils" / "energy_core", tmp_path / "utils" / "energy_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-c", FORK, str(tmp_path / "utils")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "child 0", (done.stdout, done.stderr[-2000:])


STRAY = textwrap.dedent('''
    import os, pathlib, sys, time
    utils = pathlib.Path(sys.argv[1])
    sys.path.insert(0, str(utils))
    core = utils / "energy_core"
    os.symlink("root@host.1234", core / ".#plan.py")  # an editor's lock file: a dangling link
    os.symlink(core / "gone.txt", core / "vanished.py")  # a file removed while a sync ran
    import energy_core

    energy_core.load()
    from energy_core import names
    (core / "vanished.py").unlink()
    energy_core.load()  # the stamp changed: read again, without error
    # a rewrite within the same second and of the same size: the cached bytecode is not trusted
    path = core / "names.py"
    text, atime, second = path.read_text(), path.stat().st_atime_ns, int(time.time()) * 10**9
    path.write_text(text + "\\nMARK = 'AAAA'\\n")
    os.utime(path, ns=(atime, second))
    energy_core.load()  # read again, and its bytecode cached for that size and second
    from energy_core import names
    assert names.MARK == "AAAA"
    path.write_text(text + "\\nMARK = 'BBBB'\\n")
    os.utime(path, ns=(atime, second))
    energy_core.load()
    from energy_core import names
    assert names.MARK == "BBBB", names.MARK
    print("read")
''')


def test_stray_files_and_a_same_second_rewrite_are_read_right(tmp_path):
    shutil.copytree(ROOT / "_utils" / "energy_core", tmp_path / "utils" / "energy_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    writes_bytecode = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as Salt does
    done = subprocess.run([sys.executable, "-c", STRAY, str(tmp_path / "utils")],
                          capture_output=True, text=True, timeout=60, check=False, env=writes_bytecode)
    assert done.returncode == 0 and done.stdout.strip() == "read", done.stderr[-3000:]


def test_virtual_names_what_a_layer_lacks():
    import energy_core  # pylint: disable=import-outside-toplevel

    assert energy_core.virtual("energy", "the energy module", {"docker.ps": 1}, needs=("docker.ps",)) == "energy"
    lacking = energy_core.virtual("energy", "the energy module", {}, needs=("docker.ps",))
    assert lacking[0] is False and "docker.ps" in lacking[1] and "saltext.dockermod" in lacking[1]
    sdk = energy_core.virtual("energy", "the energy module", docker_sdk=False)
    assert sdk[0] is False and "pip install docker" in sdk[1]
    # by default it looks for the SDK itself: here (the tests' venv has it) and where it is missing
    assert energy_core.virtual("energy", "the energy module") == "energy"
    with mock.patch("importlib.util.find_spec", return_value=None):
        assert "pip install docker" in energy_core.virtual("energy", "the energy module")[1]
    module = energy_core.virtual("energy_heal", "the energy_heal states", {}, needs=("energy_heal.held",))
    assert "saltutil.sync_modules" in module[1]
