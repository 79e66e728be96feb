"""What pillar ``options`` of a container may hold: extra ``docker_container.running`` arguments,
never one the formula owns (its name, image, labels, network, command, mounts, environment, ports,
restart policy): heal, clean and the reactor find the containers by their name and labels, and the
plan decides the rest. Every other name is checked against what saltext-dockermod's
``docker_container.running`` accepts, with the nearest one suggested.

``ACCEPTED`` is what saltext-dockermod 0.1.3 with the Docker SDK 7.1 accepts: the state's own
parameters, its argument translations and their aliases (``saltext.dockermod.utils.dockermod.translate.container``),
and the arguments of ``docker.APIClient.create_container`` and ``docker.types.HostConfig``. The
unit tests compare it with the installed packages."""

import difflib
import re

from .checks import is_int, is_number

ACCEPTED = frozenset((
    "auto_remove", "binds", "blkio_weight", "blkio_weight_device", "cap_add", "cap_drop", "cgroup_parent",
    "cgroupns", "client_timeout", "cmd", "command", "cpu_count", "cpu_group", "cpu_percent", "cpu_period",
    "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpuset", "cpuset_cpus", "cpuset_mems",
    "detach", "device_cgroup_rules", "device_read_bps", "device_read_iops", "device_requests",
    "device_write_bps", "device_write_iops", "devices", "dns", "dns_opt", "dns_option", "dns_search",
    "domainname", "entrypoint", "env", "environment", "expose", "extra_hosts", "force", "group_add",
    "healthcheck", "host_config", "hostname", "ignore_collisions", "image", "init", "init_path", "interactive",
    "ipc", "ipc_mode", "isolation", "kernel_memory", "label", "labels", "links", "log_config", "log_driver",
    "log_opt", "lxc_conf", "mac_address", "mem_limit", "mem_reservation", "mem_swappiness", "memory",
    "memory_swap", "memswap_limit", "mounts", "name", "nano_cpus", "network_disabled", "network_mode",
    "networking_config", "networks", "oom_kill_disable", "oom_score_adj", "pid_mode", "pids_limit", "platform",
    "port_bindings", "ports", "privileged", "publish", "publish_all", "publish_all_ports", "read_only",
    "restart", "restart_policy", "rm", "runtime", "security_opt", "security_opts", "shm_size",
    "shutdown_timeout", "skip_translate", "start", "stdin_open", "stop_signal", "stop_timeout", "storage_opt",
    "sysctl", "sysctls", "tmpfs", "tty", "ulimit", "ulimits", "use_config_proxy", "user", "user_ns_mode",
    "userns_mode", "uts_mode", "validate_ip_addrs", "volume", "volume_driver", "volumes", "volumes_from",
    "watch_action", "workdir", "working_dir",
))

_WHY = {
    "name": "the formula names each container (energy-<minion>-<component>[-<cpu>]): heal, clean and the "
            "reactor find it by that name",
    "image": "give the image in energy:{c}:image and energy:{c}:tag",
    "labels": "heal, clean and the reactor find the stack's containers by the formula's labels",
    "network": "the formula chooses each container's network (README: Security)",
    "command": "the formula sets what each container runs (SmartWatts takes energy:formula:extra_args)",
    "mounts": "the formula mounts the data volume and the config files itself (energy:config_dir)",
    "environment": "give variables in energy:{c}:env",
    "ports": "the formula publishes energy:{c}:port on the minion's address (or on 127.0.0.1 when only its "
             "host uses it)",
    "restart": "set energy:restart_policy",
    "run": "the formula starts each container, replaces it when its configuration changes, and heal "
           "recreates it; energy_heal.maintenance holds one on purpose",
    "host_config": "it would replace every host argument the formula sets; give the arguments one by one",
    "privileges": "the formula grants each container only what it needs (docs/security.md): a pillar may not "
                  "widen it",
    "limits": "set energy:{c}:limits (memory, pids)",
}
OWNED = dict(
    {key: "name" for key in ("name",)},
    **{key: "image" for key in ("image", "platform")},
    **{key: "labels" for key in ("labels", "label")},
    **{key: "network" for key in ("network_mode", "networks", "network_disabled", "networking_config")},
    **{key: "command" for key in ("command", "cmd", "entrypoint")},
    **{key: "mounts" for key in ("binds", "volumes", "volume", "volumes_from", "mounts", "volume_driver")},
    **{key: "environment" for key in ("environment", "env")},
    **{key: "ports" for key in ("port_bindings", "publish", "ports", "expose", "publish_all_ports", "publish_all")},
    **{key: "restart" for key in ("restart_policy", "restart")},
    **{key: "run" for key in ("start", "auto_remove", "rm", "detach", "force", "watch_action", "skip_translate")},
    **{key: "privileges" for key in ("privileged", "cap_add", "cap_drop", "security_opt", "pid_mode", "ipc_mode",
                                     "userns_mode", "uts_mode", "cgroupns", "devices", "device_cgroup_rules",
                                     "device_requests", "user", "read_only", "tmpfs", "sysctls", "oom_kill_disable",
                                     "group_add", "extra_hosts", "dns", "dns_search", "dns_opt")},
    **{key: "limits" for key in ("mem_limit", "memory", "memswap_limit", "memory_swap", "pids_limit")},
    host_config="host_config",
)

BOOLEANS = frozenset(("privileged", "read_only", "tty", "stdin_open", "interactive", "init", "oom_kill_disable",
                      "ignore_collisions", "validate_ip_addrs", "use_config_proxy"))
INTEGERS = frozenset(("pids_limit", "cpu_shares", "cpu_period", "cpu_quota", "cpu_count", "cpu_percent",
                      "cpu_rt_period", "cpu_rt_runtime", "blkio_weight", "oom_score_adj", "mem_swappiness",
                      "nano_cpus", "stop_timeout", "shutdown_timeout", "client_timeout"))
SIZES = frozenset(("mem_limit", "memory", "memswap_limit", "memory_swap", "mem_reservation", "shm_size",
                   "kernel_memory"))


def _is_size(value):
    """Bytes as an integer, or a number with Docker's unit (b, k, m, g)."""
    return is_int(value, -1) or (isinstance(value, str) and re.fullmatch(r"[0-9]+[bkmgBKMG]?", value) is not None)


def _plain(value, depth=0):
    """Scalars, lists and mappings of them, without NUL: what Docker's API can take."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, (bool, int)) or is_number(value):
        return True
    if depth < 3 and isinstance(value, list):
        return all(_plain(v, depth + 1) for v in value)
    if depth < 3 and isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def problem(component, key, value):
    """The fix for option ``key`` of ``component``'s container set to ``value``, or None when it
    may be given."""
    if not isinstance(key, str) or key not in ACCEPTED:
        nearest = difflib.get_close_matches(str(key), sorted(ACCEPTED - set(OWNED)), n=1, cutoff=0.7)
        hint = f" (did you mean {nearest[0]}?)" if nearest else ""
        return (f"not an argument of docker_container.running{hint}; remove it (saltext-dockermod's "
                "docker_container.running documents the arguments).")
    if key in OWNED:
        return f"remove it: {_WHY[OWNED[key]].format(c=component)}."
    if key in BOOLEANS and not isinstance(value, bool):
        return "true or false."
    if key in INTEGERS and not is_int(value):
        return "a whole number."
    if key in SIZES and not _is_size(value):
        return "a size in bytes, or a number with a unit b, k, m or g (e.g. 512m)."
    if not _plain(value):
        return "a string, a number, true/false, or a list or mapping of them."
    return None


# SmartWatts flags the formula sets from the plan: where reports come from and go to, under which
# names, and the settings other pillar keys give
FORMULA_FLAGS = {
    "--input": "the plan", "--output": "the plan", "--uri": "the plan", "--db": "the plan",
    "--collection": "the plan", "--model": "the plan", "--name": "the plan", "--port": "the plan",
    "--org": "energy:influxdb:org", "--token": "energy:influxdb:token", "--tags": "the plan",
    "--stream": "the plan", "--config-file": "the plan",
    "--cpu-base-freq": "the grain (or energy:formula:default_base_freq_mhz)",
    "--cpu-error-threshold": "energy:formula:cpu_error_threshold",
    "--sensor-reports-frequency": "energy:sensor:frequency_ms", "--cpu-tdp": "the grain (energy:facts:tdp_w)",
    "--disable-dram-formula": "the grain (its RAPL domains)", "--verbose": "energy:formula:verbose",
}


def formula_args_problem(args):
    """The fix for ``energy:formula:extra_args`` when one of them sets what the formula sets itself
    (``--output`` would send the power elsewhere, ``--uri`` change where reports come from), or None."""
    for arg in args if isinstance(args, list) else ():
        flag = str(arg).split("=", 1)[0]
        if flag in FORMULA_FLAGS:
            return f"remove {flag}: the formula sets it from {FORMULA_FLAGS[flag]}."
    return None
