"""
The ``energy_engine`` execution module: what the energy formula needs to know about the Docker
engine of this minion, published with its energy facts (``energy.facts``).

``docker_engine``   the engine's ID (``docker info``): minions whose containers run on one engine
                    reach each other's databases by container name (``energy_core.hardening``)
``docker_perfmon``  whether the engine knows the capability CAP_PERFMON (some builds refuse the
                    name): the sensor gets CAP_PERFMON instead of CAP_SYS_ADMIN only then

.. code-block:: bash

    salt-call energy_engine.facts
"""

import logging

log = logging.getLogger(__name__)

__virtualname__ = "energy_engine"

try:
    import docker

    HAS_DOCKER_SDK = True
except ImportError:
    HAS_DOCKER_SDK = False

# an image name no registry serves: the engine validates the capabilities of a create request
# before it looks for the image, so the answer says whether it knows the capability, and nothing
# is created or pulled
PROBE_IMAGE = "energy-capability-probe.invalid/none:none"


def __virtual__():
    if not HAS_DOCKER_SDK:
        return (False, "the energy_engine module needs the Docker SDK for Python (pip install docker)")
    return __virtualname__


def _knows_capability(client, capability):
    try:
        client.api.create_container(PROBE_IMAGE, host_config=client.api.create_host_config(cap_add=[capability]))
    except docker.errors.ImageNotFound:
        return True
    except docker.errors.APIError as exc:
        if "capabilit" in str(exc).lower() or "CapAdd" in str(exc):
            return False
        log.debug("energy_engine: the capability probe got %s", exc)
        return None
    return None  # pragma: no cover (the image never exists)


def facts():
    """
    This minion's Docker engine as its energy facts publish it: ``{"docker_engine": ID or None,
    "docker_perfmon": true, false or None}`` (None: the engine did not answer). Kept for the job.

    CLI Example:

    .. code-block:: bash

        salt-call energy_engine.facts
    """
    if "energy_engine.facts" in __context__:
        return dict(__context__["energy_engine.facts"])
    result = {"docker_engine": None, "docker_perfmon": None}
    try:
        client = docker.from_env(timeout=10)
        result["docker_engine"] = client.info().get("ID") or None
        result["docker_perfmon"] = _knows_capability(client, "PERFMON")
    except (docker.errors.DockerException, OSError) as exc:
        log.warning("energy_engine: the Docker engine does not answer (%s): no engine facts", exc)
    __context__["energy_engine.facts"] = result
    return dict(result)
