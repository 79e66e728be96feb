"""Shared test helpers: where the formula lives, the images built by tests/images/build.sh.

The pure core (``_utils/energy_core``) goes on ``sys.path`` here, as Salt's loader puts the synced
utils on it: unit tests import it by plain ``import energy_core``."""

import json
import pathlib
import socket
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT / "_utils") not in sys.path:
    sys.path.insert(0, str(ROOT / "_utils"))


FORMULA_DIRS = ("energy", "_utils", "_engines", "_grains", "_modules", "_states", "_runners", "_pillar",
               "examples")


def formula_file_root(directory):
    """A file root holding only the formula (links into the repository): serving the repository
    itself would make the master's fileserver walk the virtualenv and the image caches."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in FORMULA_DIRS:
        link = directory / name
        if not link.exists():
            link.symlink_to(ROOT / name)
    return directory


def built_images():
    path = ROOT / ".cache" / "images.json"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `make images` (tests/images/build.sh) first")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def images():
    return built_images()


@pytest.fixture(scope="session")
def defaults():
    import yaml

    return yaml.safe_load((ROOT / "energy" / "defaults.yaml").read_text())["energy"]


@pytest.fixture
def open_port():
    """A TCP port on 127.0.0.1 that accepts connections for the test's duration."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def closed_port():
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
