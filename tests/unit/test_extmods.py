"""energy_core.extmods and the energy_extmods grain: which files the formula ships to a minion,
and the digest the orch compares with the master's to decide whom to sync."""

import importlib.util

from energy_core import extmods
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("energy_grains_extmods", ROOT / "_grains" / "energy.py")
grains = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grains)


def test_shipped_is_the_formula_s_own_synced_files():
    assert extmods.shipped("modules/energy.py")
    assert extmods.shipped("utils/energy_core/plan.py")
    assert not extmods.shipped("utils/energy_core/__pycache__/plan.cpython-311.pyc")
    assert not extmods.shipped("modules/other.py")  # another formula's module
    assert not extmods.shipped("utils/energy_core_old/plan.py")
    assert not extmods.shipped("runners/energy.py")  # the master's, never synced to a minion
    assert not extmods.shipped("modules/energy.py.orig")


def _minion(root, text="x = 1\n"):
    for rel in ("grains/energy.py", "modules/energy.py", "states/energy.py", "utils/energy_core/names.py"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_digest_changes_with_any_shipped_file_and_only_with_them(tmp_path):
    root = _minion(tmp_path)
    first = extmods.digest(extmods.local_files(str(root)))
    assert first.startswith("sha256-") and len(first) == len("sha256-") + 64
    (root / "modules" / "other.py").write_text("print()\n")
    (root / "utils" / "energy_core" / "__pycache__").mkdir()
    (root / "utils" / "energy_core" / "__pycache__" / "names.cpython-311.pyc").write_bytes(b"\0")
    assert extmods.digest(extmods.local_files(str(root))) == first
    (root / "utils" / "energy_core" / "names.py").write_text("x = 2\n")
    second = extmods.digest(extmods.local_files(str(root)))
    assert second != first
    (root / "utils" / "energy_core" / "extra.py").write_text("")  # a new file of the core counts
    assert extmods.digest(extmods.local_files(str(root))) not in (first, second)
    # the same content under another name is another digest
    assert extmods.digest({"modules/energy.py": "a"}) != extmods.digest({"states/energy.py": "a"})


def test_nothing_synced_has_no_digest(tmp_path):
    assert extmods.local_files(str(tmp_path)) == {}
    assert extmods.digest({}) is None
    assert extmods.digest({"modules/other.py": "a"}) is None


def test_the_grain_is_the_digest_of_the_minion_s_extension_modules(tmp_path):
    grains.__opts__ = {"extension_modules": str(_minion(tmp_path))}
    assert grains.energy_extmods() == {"energy_extmods": extmods.digest(extmods.local_files(str(tmp_path)))}
    grains.__opts__ = {"extension_modules": str(tmp_path / "none")}  # nothing synced: no grain
    assert grains.energy_extmods() == {}


def test_every_file_the_formula_syncs_to_a_minion_is_shipped():
    # a module split off (energy_heal, energy_archive) must count in the digest, or the orch
    # would not sync a minion whose copy of it is old
    for kind in ("grains", "modules", "states"):
        for path in sorted((ROOT / f"_{kind}").glob("*.py")):
            assert extmods.shipped(f"{kind}/{path.name}"), f"_{kind}/{path.name} is missing from extmods.SHIPPED"
