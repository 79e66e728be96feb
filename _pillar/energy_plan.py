"""
The ``energy_plan`` ext_pillar: each minion's own part of the energy plan, as pillar
``energy_plan``.

The orch's runner step (``salt-run energy_plan.prepare``) computes the plan once on the master and
keeps each minion's part in the master's cachedir (``energy_core.parts``); this ext_pillar gives a
minion its own part and nothing else: the containers it runs with the secrets they need, the
configuration as the master validated it (secrets masked). A minion never reads the whole mine nor
another minion's secrets. Enable it in the master's config (then restart salt-master):

.. code-block:: yaml

    ext_pillar:
      - energy_plan: {}
"""

import logging
import os
import sys

log = logging.getLogger(__name__)

__virtualname__ = "energy_plan"

try:  # the synced utils are on sys.path while Salt's loader loads this module
    import energy_core
except ImportError:
    sys.path += [os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), d) for d in ("_utils", "utils")]
try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import parts
    CORE_ERROR = None
except ImportError as exc:
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_plan ext_pillar needs the formula's energy_core utils on the master ({CORE_ERROR}): "
                       "run salt-run saltutil.sync_all (energy.orch does)")
    return __virtualname__


def ext_pillar(minion_id, pillar, *args, **kwargs):  # pylint: disable=unused-argument
    """``{"energy_plan": part}`` for ``minion_id`` when the master keeps a part for it, else ``{}``."""
    found = parts.read(os.path.join(__opts__["cachedir"], "energy"), minion_id)
    return {parts.PILLAR_KEY: found} if found else {}
