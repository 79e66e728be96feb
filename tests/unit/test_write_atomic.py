"""energy_core.healing.write_atomic from several jobs at once (health records, the seen file): each
writer renames a temporary file of its own, so none fails and the file is always one whole write."""

import json
import multiprocessing
import os

from energy_core import healing


def _writer(path, n, errors):
    try:
        for i in range(200):
            healing.write_atomic(path, json.dumps({"writer": n, "i": i, "pad": "x" * 2000}), mode=0o600)
    except Exception as exc:  # pylint: disable=broad-except
        errors.put(repr(exc))


def test_concurrent_writers_never_fail_and_leave_a_whole_file(tmp_path):
    path = str(tmp_path / "energy" / "health.json")
    errors = multiprocessing.Queue()
    writers = [multiprocessing.Process(target=_writer, args=(path, n, errors)) for n in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert errors.empty(), errors.get()
    assert json.loads(open(path, encoding="utf-8").read())["i"] == 199
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)
    assert os.listdir(tmp_path / "energy") == ["health.json"]  # no temporary file left
