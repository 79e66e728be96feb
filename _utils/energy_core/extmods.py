"""The extension modules the formula ships to its minions, and one digest of them.

``energy.orch`` syncs a minion only when the digest of its synced copy (the ``energy_extmods``
grain) differs from the digest of what the master serves: the sync step was a state run on every
minion at every orch, the largest step that does nothing on a re-run.
"""

import hashlib
import os

GRAIN = "energy_extmods"
# kind -> the formula's files and folders of that kind (salt://_<kind>/<path>; synced to the
# minion's extension_modules/<kind>/<path>)
SHIPPED = {"engines": ("energy_names.py",), "grains": ("energy.py",),
           "modules": ("energy.py", "energy_archive.py", "energy_engine.py", "energy_heal.py", "energy_health.py",
                       "energy_inventory.py", "energy_report.py"),
           "states": ("energy.py", "energy_heal.py", "energy_network.py"), "utils": ("energy_core",)}
SYNCED = (".py", ".pyx", ".so", ".zip")  # the files saltutil.sync_* copies (its include pattern)


def shipped(relpath):
    """Whether ``relpath`` (``<kind>/<path>``, '/'-separated) is a file the formula ships."""
    kind, _, rest = relpath.partition("/")
    return rest.endswith(SYNCED) and any(rest == path or rest.startswith(path + "/") for path in SHIPPED.get(kind, ()))


def file_sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def digest(files):
    """``sha256-<hex>`` over ``files`` ({``<kind>/<path>``: sha256 of its content}, the shipped
    ones only); None when there is none (a minion that has not synced, a master that does not
    serve the formula)."""
    files = {rel: sha for rel, sha in files.items() if shipped(rel)}
    if not files:
        return None
    total = hashlib.sha256()
    for rel in sorted(files):
        total.update(f"{rel}\0{files[rel]}\n".encode())
    return "sha256-" + total.hexdigest()


def local_files(root):
    """{``<kind>/<path>``: sha256} of the shipped files under ``root`` (a minion's
    ``extension_modules``); compiled files (``__pycache__``) are not shipped."""
    files = {}
    for kind, paths in SHIPPED.items():
        for path in paths:
            top = os.path.join(root, kind, path)
            if os.path.isfile(top):
                files[f"{kind}/{path}"] = file_sha256(top)
                continue
            for folder, dirs, names in os.walk(top):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for name in names:
                    rel = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
                    if shipped(rel):
                        files[rel] = file_sha256(os.path.join(folder, name))
    return files
