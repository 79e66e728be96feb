"""
Recreating a container of the stack on this minion, with or without its master.

``energy.heal_check`` (the heal schedule) and ``energy.react`` (the reactor) recreate an unhealthy
container through the ``energy.healthy`` state. ``state.single`` would compile this minion's
pillar on the master before it runs the state: with the master down, a container that died would
stay dead until the master came back (the job waits for the master, then fails). The state needs
no pillar (its arguments are the kept plan), so ``energy_heal.healthy`` runs it with the pillar
the minion holds, and the heal schedule goes on healing while the master is away.

.. code-block:: bash

    salt-call energy_heal.healthy energy-node-a-sensor sensor run='{image: ...}'
"""

import logging

log = logging.getLogger(__name__)

__virtualname__ = "energy_heal"


def __virtual__():
    return __virtualname__


def _held_pillar():
    """The pillar this minion holds (as loaded at its last refresh). Salt's State compiles a
    pillar from the master when it is given an empty one: never empty here."""
    try:
        pillar = __pillar__.value()  # pylint: disable=undefined-variable
    except AttributeError:
        pillar = dict(__pillar__)  # pylint: disable=undefined-variable
    return pillar or {"energy": {}}


def healthy(name, component, run, probe=None, grace=60, timeout=60, trigger="health check"):
    """
    Apply the ``energy.healthy`` state to one container, as ``state.single energy.healthy`` does,
    but without asking the master for the pillar. Like ``state.single``, it refuses to run beside
    another state run of this minion, and returns that run's description (a list) instead.

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.healthy energy-node-a-sensor sensor run='{image: powerapi/hwpc-sensor:1.4.0}'
    """
    import salt.state  # pylint: disable=import-outside-toplevel
    import salt.utils.state  # pylint: disable=import-outside-toplevel

    conflict = __salt__["state.running"]()
    if conflict:
        __context__["retcode"] = 1
        return conflict
    low = {"state": "energy", "fun": "healthy", "__id__": name, "name": name, "component": component, "run": run,
           "probe": probe, "grace": grace, "timeout": timeout, "trigger": trigger}
    opts = salt.utils.state.get_sls_opts(__opts__)
    opts["test"] = bool(__opts__.get("test"))
    state = salt.state.State(opts, initial_pillar=_held_pillar())
    errors = state.verify_data(low)
    if errors:
        __context__["retcode"] = 1
        return errors
    state._mod_init(low)  # pylint: disable=protected-access
    ret = {f"energy_|-{name}_|-{name}_|-healthy": state.call(low)}
    if not salt.utils.state.check_result(ret):
        __context__["retcode"] = 1
    return ret
