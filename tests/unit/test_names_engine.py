"""The energy_names engine records each container start (name, compose project and service) on its
minion, what Docker runs when it starts first, and keeps its record bounded."""

import importlib.util
import json

from tests.conftest import ROOT

from energy_core import report_names


def engine(tmp_path, duration="14d"):
    spec = importlib.util.spec_from_file_location("energy_names_engine", ROOT / "_engines" / "energy_names.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__opts__ = {"cachedir": str(tmp_path)}
    module.__salt__ = {"config.get": lambda key, default=None: duration}
    return module


class FakeDocker:
    def __init__(self, running, events):
        self.running, self.events_ = running, events
        self.filters = None

    def containers(self):
        return self.running

    def events(self, filters, decode):
        self.filters = filters
        assert decode is True
        return iter(self.events_)


ID_A, ID_B = "a" * 64, "b" * 64


def test_it_records_what_runs_then_every_start(tmp_path):
    module = engine(tmp_path)
    path = tmp_path / report_names.RECORD_FILE
    path.parent.mkdir()
    client = FakeDocker([{"Id": ID_A, "Names": ["/web-1"], "Labels": {report_names.LABEL_SERVICE: "web"}}],
                        [{"Actor": {"ID": ID_B, "Attributes": {"name": "batch", report_names.LABEL_PROJECT: "exp"}},
                          "time": 1_800_000_000},
                         {"Actor": {"ID": 5, "Attributes": {"name": "odd"}}}])
    assert module._watch(client, str(path), 0) == 2  # pylint: disable=protected-access
    assert client.filters == {"type": "container", "event": "start"}
    by_id, _ = report_names.read_records(path.read_text().splitlines())
    assert by_id[ID_A]["name"] == "web-1" and by_id[ID_A]["service"] == "web"
    assert by_id[ID_B] == {"id": ID_B, "name": "batch", "project": "exp", "service": None, "time": 1_800_000_000}


def test_the_record_is_rewritten_bounded_and_private(tmp_path, monkeypatch):
    module = engine(tmp_path, duration="1h")
    path = tmp_path / "containers.jsonl"
    old = report_names.record(ID_A, "old", {}, 1.0)
    path.write_text(old + "\n")
    monkeypatch.setattr(module.report_names, "MAX_RECORDS", 2)
    lines = 0
    for i in range(5):
        lines = module._append(str(path), report_names.record(f"{i:064x}", f"c{i}", {}, 1e12), lines)  # pylint: disable=protected-access
    kept = [json.loads(line)["name"] for line in path.read_text().splitlines()]
    assert "old" not in kept and len(kept) <= 4 and kept[-1] == "c4"
    assert path.stat().st_mode & 0o077 == 0
