"""
Master side of the energy formula.

``energy.orch_targets``  what each phase of ``energy.orch`` targets (role resolution of the pure
                         core, the minions that do not answer left out)
``energy.reactor``       the master's reaction to the stack's docker_events
                         (``master.d/energy-reactor.conf``), loaded when salt-master starts
``energy.react_event``   what that reaction runs: checks the event, then has the minion that sent
                         it recreate its container (``energy.react``)
``energy.summary``       the deployment as it is: a table per minion, the topology (text, SVG,
                         DOT, PNG), what differs between plan and reality
``energy.backup``        consistent backups of the InfluxDB databases, with a manifest
``energy.restore``       a backup into the current plan (checked first, merged without duplicates)
``energy.export``        power per container as CSV or line protocol, streamed

.. code-block:: bash

    salt-run energy.reactor
"""

import json
import logging
import os
import subprocess

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "energy"

try:
    import energy_core

    core = energy_core.load()
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced to the master yet (saltutil.sync_utils)
    core = None
    CORE_ERROR = str(exc)


def __virtual__():
    if core is None:
        return (False, f"the energy runner needs the formula's energy_core utils on the master ({CORE_ERROR}): "
                       "run salt-run saltutil.sync_utils (energy.orch does)")
    return __virtualname__


def _served_extmods(saltenv="base"):
    """The digest of the formula's modules as this master's file server serves them in
    ``saltenv`` (``energy_core.extmods``), or None when it serves none of them (every minion is
    synced then, as before this check existed)."""
    import salt.fileserver  # pylint: disable=import-outside-toplevel

    try:
        server = salt.fileserver.Fileserver(__opts__)
        files = {}
        for path in server.file_list({"saltenv": saltenv}):
            if path.startswith("_") and core.extmods.shipped(path[1:]):
                found = server.find_file(path, saltenv)
                if found.get("path"):
                    files[path[1:]] = core.extmods.file_sha256(found["path"])
        return core.extmods.digest(files)
    except Exception as exc:  # pylint: disable=broad-except  (no file server here: sync everyone)
        log.warning("energy: cannot read the formula's modules from the file server (%s): every minion is synced", exc)
        return None


def _to_sync(every):
    """The compound target of the sync step: ``every`` without the minions whose
    ``energy_extmods`` grain, as the master's cache holds it (sent with each pillar request), is
    the digest of what the master serves; '' when that leaves none. Ids, not a grain match: a
    minion whose cached grain is behind its own is synced once more rather than waited for."""
    served = _served_extmods()
    if not served:
        return every
    cached = __salt__["cache.grains"](tgt=every, tgt_type="compound") or {}
    # an id with a comma or a space would change the target: such a minion is synced, always
    synced = sorted(m for m, grains in cached.items() if core.names.plain_id(m) and isinstance(grains, dict)
                    and grains.get(core.extmods.GRAIN) == served)
    if not synced:
        return every
    # cache.grains names every minion its target matches ({} without cached data): those left
    # once the synced ones are out are the ones the target below matches
    return f"( {every} ) and not L@{','.join(synced)}" if set(cached) - set(synced) else ""


def orch_targets(defaults, pillar=None, ping_timeout=None):
    """
    What each step of ``energy.orch`` targets: ``targets`` (role -> compound target, without the
    minions that do not answer), ``all`` (every minion of every role), ``down`` (those that did not
    answer a ``test.ping`` within ``energy:ping_timeout``), ``roles_down`` (roles whose minions are
    all down: their component is left out), ``phases`` (the deploy phases: ``[{"name", "sls",
    "tgt"}]``, ``energy_core.placement.orch_phases``: the last one applies ``energy.heal`` too, on
    every minion), ``events_enabled`` and ``restart_master``.

    ``sync`` is the target of the sync step: the minions whose synced copy of the formula's modules
    differs from what the master serves ('' when none does: no sync step).

    ``defaults`` is ``energy`` of defaults.yaml, ``pillar`` the master's pillar ``energy``. Pillar
    errors are left to the orch's plan-check step, which names them on every minion.

    CLI Example:

    .. code-block:: bash

        salt-run energy.orch_targets "$(python3 -c 'import yaml,json;print(json.dumps(yaml.safe_load(open("energy/defaults.yaml"))["energy"]))')"
    """
    try:
        conf = core.schema.merge(defaults or {}, pillar)
    except core.schema.PlanError:
        conf = dict(defaults or {})
    targets = core.placement.role_targets(conf)
    every = " or ".join(f"( {t} )" for t in dict.fromkeys(targets.values()))
    timeout = ping_timeout or conf.get("ping_timeout")
    if not core.schema.is_positive(timeout):
        timeout = 10
    # an explicit timeout: the master's (or salt-run -t's) could make a down minion cost minutes
    status = __salt__["manage.status"](tgt=every, tgt_type="compound", timeout=timeout,
                                       gather_job_timeout=timeout) if every else {}
    down = sorted((status or {}).get("down") or [])
    odd = [m for m in down if not core.names.plain_id(m)]
    if odd:  # 'x,ctl' or 'x or *' spliced into 'and not L@...' would leave out minions that answer
        raise CommandExecutionError(
            f"minion(s) {', '.join(repr(m) for m in odd)} did not answer, and their ids cannot be left out of a "
            "compound target (only letters, digits, '.', '_' and '-' can): bring them back, or remove their keys "
            "(salt-key -d), then run the orch again")
    roles_down = []
    if down:
        skip = " and not L@" + ",".join(down)
        targets = {role: f"( {target} ){skip}" for role, target in targets.items()}
        every = f"( {every} ){skip}"  # 'a or b and not c' is 'a or (b and not c)'
        # cache.grains matches without pinging: a role with no minion left has no phase
        roles_down = [role for role, target in targets.items()
                      if not __salt__["cache.grains"](tgt=target, tgt_type="compound")]
    heal = conf.get("heal") if isinstance(conf.get("heal"), dict) else {}
    events = heal.get("events") if isinstance(heal.get("events"), dict) else {}
    return {"targets": targets, "all": every, "down": down, "roles_down": roles_down,
            "sync": _to_sync(every) if every else "",
            "phases": core.placement.orch_phases(targets, roles_down, every),
            "events_enabled": events.get("enabled", True) is True,
            "restart_master": events.get("restart_master", False) is True}


def react_event(minion=None, event=None):
    """
    The master's reaction to ``energy/docker/<action>`` from the docker_events engine of
    ``minion``: when ``event`` reports the death (or removal) of a container of the stack that
    belongs to that minion, run ``energy.react <name> <action>`` on it; anything else is dropped
    and logged. The event comes from a minion, so it is untrusted: it is checked here, in Python,
    and passed on as data.

    CLI Example:

    .. code-block:: bash

        salt-run energy.react_event minion=node-a event='{"Action": "die", "Actor": {"Attributes": {"name": "energy-node-a-sensor", "energy.minion": "node-a"}}}'
    """
    reason = core.names.reaction_refused(minion, event)
    if reason:
        log.info("energy reactor: event from %r dropped: %s", minion, reason)
        return {"result": True, "comment": f"dropped: {reason}"}
    import salt.client  # pylint: disable=import-outside-toplevel

    name = event["Actor"]["Attributes"]["name"]
    with salt.client.get_local_client(mopts=__opts__) as client:
        jid = client.cmd_async([minion], "energy.react", kwarg={"name": name, "action": event["Action"]},
                               tgt_type="list")
    return {"result": bool(jid), "comment": f"energy.react {name} {event['Action']} sent to {minion} (job {jid})"}


# --------------------------------------------------------------------------- the reactor config


def _reactor_file():
    return os.path.join(os.path.dirname(__opts__["conf_file"]), "master.d", core.healing.REACTOR_FILE)


def _running_reactions(wait):
    """The reactions the running reactor lists, or None when the master runs no reactor.

    The list is taken as loaded from the config the reactor read when salt-master started: what
    ``salt/reactors/manage/add`` (``salt-run reactor.add``) adds shows in this list but, in Salt 3008,
    never matches an event (it goes to a copy of the opts the reactor does not read), which is why
    this runner does not add reactions live."""
    import salt.utils.event  # pylint: disable=import-outside-toplevel
    import salt.utils.master  # pylint: disable=import-outside-toplevel

    with salt.utils.event.get_event("master", __opts__["sock_dir"], opts=__opts__, listen=True) as sevent:
        data = {"key": salt.utils.master.get_master_key("root", __opts__)}
        sevent.fire_event(data, "salt/reactors/manage/list")
        listed = sevent.get_event(wait=wait, tag="salt/reactors/manage/list-results")
    if listed is None:
        return None
    return [next(iter(r)) for r in listed.get("reactors") or [] if isinstance(r, dict) and r]


def _restart_master_later(how, pid, command):
    """Restart salt-master from a detached process once the caller (``salt-run``, the orch) has
    returned: a restart in the middle of an orchestration would lose its jobs' returns."""
    import shlex  # pylint: disable=import-outside-toplevel

    pidfile = shlex.quote(__opts__["pidfile"])
    script = core.healing.restart_script(how, "salt-master", pid, command,
                                         wait_for=f"kill -0 {os.getpid()} 2>/dev/null",
                                         guard=f"sleep 1; [ \"$(cat {pidfile} 2>/dev/null)\" = {pid} ]")
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = "/"
    subprocess.Popen(["sh", "-c", script], start_new_session=True, close_fds=True, cwd=cwd,  # pylint: disable=consider-using-with
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def reactor(enabled=True, restart=False, wait=5):
    """
    Give this master the reaction ``energy/docker/* -> salt://energy/reactor/heal.sls``
    (``enabled``) or take it away, in ``master.d/energy-reactor.conf``, and say whether the running
    reactor has loaded it.

    The reactor reads its reactions when salt-master starts (and starts at all only when the master
    config has a ``reactor:`` or ``engines: [reactor]``). When the running master has not loaded the
    file as it is now: with ``restart=True`` and a master that can be restarted (systemd, or a
    daemon started with ``-d``), salt-master is restarted once this runner's caller (the orch) has
    returned; otherwise the return says so (``comment``, ``warnings``) and, until someone restarts
    it, the heal schedule recreates what dies. Nothing is added live: in Salt 3008 a reaction
    added to a running reactor is listed but never matched.

    Returns ``config`` (what was written, or None), ``file``, ``running`` (a reactor answered),
    ``loaded`` (the running reactor has the file's reaction), ``restart`` and ``comment``.

    CLI Example:

    .. code-block:: bash

        salt-run energy.reactor
        salt-run energy.reactor restart=True
        salt-run energy.reactor enabled=False
    """
    path = _reactor_file()
    main = core.healing.main_config_key(__opts__["conf_file"], "reactor")
    written = core.healing.write_atomic(path, core.healing.reactor_config(main, enabled))
    result = {"config": f"{path} {written}" if written else None, "file": path, "restart": None}
    reactions = _running_reactions(wait)
    pid = core.healing.pid_from(__opts__.get("pidfile"))
    started = core.healing.started_at(pid) if pid else None
    event = core.names.REACTOR_EVENT
    result["running"] = reactions is not None
    listed = reactions is not None and event in reactions
    # the file is what the running master read when it started before the file last changed
    result["loaded"] = listed and (started is None or os.path.getmtime(path) < started) if enabled else listed
    if result["loaded"] == bool(enabled):
        result["comment"] = (f"reaction {event} loaded by the running reactor" if enabled
                             else f"reaction {event} absent from {path} and from the running reactor")
        return result

    command = core.healing.command_of(pid) if pid else []
    how = core.healing.how_to_restart(pid, command, os.path.isdir("/run/systemd/system")) if restart else None
    need = (f"to load {path} (reaction {event})" if enabled
            else f"to drop reaction {event} (harmless until then: energy.react skips when events are off)")
    if how:
        _restart_master_later(how, pid, command)
        result["restart"] = how
        result["comment"] = f"salt-master restarts ({how}) once this run has returned, {need}"
        log.warning("energy: salt-master restarts (%s) once this run has returned, %s", how, need)
        return result
    why = ("energy:heal:events:restart_master is false" if not restart
           else "no systemd or daemon mode (-d) to restart it with")
    result["comment"] = f"restart salt-master {need} ({why})"
    if enabled:
        result["comment"] += "; until then the heal schedule recreates what dies"
        result["warnings"] = [result["comment"]]
    log.warning("energy: %s", result["comment"])
    return result


# --------------------------------------------------------------------------- operate: summary, backup, restore, export


def _progress(message):
    """A line in salt-run's output while the runner works (and in the master's log)."""
    log.info("energy: %s", message)
    try:
        __jid_event__.fire_event({"message": message}, "progress")  # pylint: disable=undefined-variable
    except NameError:  # called outside salt-run (unit tests)
        pass


def _failed(message):
    """End a runner with an error: salt-run prints it and exits non-zero."""
    __context__["retcode"] = 1
    log.error("energy: %s", message)
    return {"result": False, "error": message, "retcode": 1}  # salt-run exits with retcode


def _client():
    import salt.client  # pylint: disable=import-outside-toplevel

    return salt.client.get_local_client(mopts=__opts__)


def _ask(minions, fun, timeout, **kwarg):
    """``fun`` on each of ``minions`` (a list); ``{minion: return}`` of those that answered, and a
    ``{minion: error text}`` of those whose function failed."""
    answers, errors = {}, {}
    with _client() as client:
        found = client.cmd(list(minions), fun, kwarg=kwarg, tgt_type="list", timeout=timeout, full_return=True)
    for minion, ret in (found or {}).items():
        if not isinstance(ret, dict):
            continue
        if ret.get("retcode", 0) != 0 or (isinstance(ret.get("ret"), str) and "ERROR" in ret["ret"][:40]):
            errors[minion] = str(ret.get("ret"))[-2000:]
        else:
            answers[minion] = ret.get("ret")
    return answers, errors


def _fleet(tgt, timeout):
    """Every minion's ``energy.live`` (``tgt``'s minions) and the plan's topology as the first of them
    computes it; the minions with energy facts in the mine are the ones expected to answer."""
    expected = sorted((__salt__["mine.get"](tgt, core.names.MINE_FUNCTION) or {}).keys())
    with _client() as client:
        found = client.cmd(tgt, "energy.live", kwarg={"topology": True}, timeout=timeout, full_return=True)
    lives, topology, problems = {}, None, []
    for minion, ret in sorted((found or {}).items()):
        live = ret.get("ret") if isinstance(ret, dict) else ret
        if not isinstance(live, dict):
            lives[minion] = str(live)
            continue
        lives[minion] = live
        if topology is None and live.get("topology") is not None:
            topology = live["topology"]
        elif live.get("topology_error"):
            problems.append(f"{minion}: {live['topology_error']}")
    return lives, topology, expected, problems


def _combined(tgt, timeout):
    lives, topology, expected, problems = _fleet(tgt, timeout)
    summary = core.topology.combine(topology, lives, expected)
    if topology is None:
        summary["differences"]["errors"]["plan"] = "; ".join(problems) or "no minion answered with the plan"
    return summary


DATA_OUTPUTTERS = ("json", "yaml", "pprint", "raw", "nested", "newline_values_only")
PICTURES = ("svg", "dot", "png")


def summary(tgt="*", format="text", path=None, timeout=30):  # pylint: disable=redefined-builtin
    """
    The deployment as it is: from every minion's live containers (``energy.live``) and the plan
    (computed by a minion from the mine).

    - a table per minion: its containers, component, CPU name, state, last health check,
      maintenance window, published address and port, data volume and its size;
    - the topology (sensors of each CPU name -> MongoDB -> SmartWatts -> InfluxDB -> Grafana, with
      the machine of each box), drawn as text;
    - what differs between the plan and reality: a planned container that is missing or not
      running, a container with the stack's labels that the plan does not have, a minion that did
      not answer.

    format
        ``text`` (default); ``json`` (the same facts as data; ``--out=json`` or ``--out=yaml`` also
        give data); ``svg``, ``dot`` (Graphviz) or ``png`` (needs Graphviz's ``dot``) write the
        picture to ``path`` (default: the master's cachedir ``energy/summary.<format>``) and
        return the text.
    tgt
        The minions to ask (default all).

    CLI Example:

    .. code-block:: bash

        salt-run energy.summary
        salt-run energy.summary --out=json
        salt-run energy.summary format=svg path=/tmp/energy.svg
    """
    if format not in ("text", "json") + PICTURES:
        return _failed(f"format: bad value {format!r}: one of text, json, {', '.join(PICTURES)}")
    facts = _combined(tgt, timeout)
    drawn = None
    if format in PICTURES:
        path = path or os.path.join(__opts__["cachedir"], "energy", f"summary.{format}")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            return _failed(f"path: bad value {path!r}: directory {directory} does not exist. Fix: create it, or "
                           "leave path out")
        source = core.topology.svg(facts) if format == "svg" else core.topology.dot(facts)
        if format == "png":
            try:
                subprocess.run(["dot", "-Tpng", "-o", path], input=source.encode(), check=True, timeout=60,
                               capture_output=True)
            except FileNotFoundError:
                return _failed("format: png needs Graphviz's dot on the master. Fix: apt-get install graphviz, or "
                               "format=svg (drawn without it)")
            except subprocess.CalledProcessError as exc:
                return _failed(f"dot -Tpng failed: {exc.stderr.decode(errors='replace')[-500:]}")
        else:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(source)
        drawn = path
    if format == "json" or __opts__.get("output") in DATA_OUTPUTTERS:
        return dict(facts, picture=drawn)
    return core.topology.text(facts) + (f"\nPicture: {drawn}\n" if drawn else "")


def _cpu_list(cpus, known):
    """The CPU names asked for (all of ``known`` when None); an unknown one is an error."""
    if cpus in (None, "", []):
        return sorted(known)
    wanted = [c.strip() for c in cpus.split(",")] if isinstance(cpus, str) else [str(c) for c in cpus]
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise core.archive.ArchiveError(
            f"cpus: bad value {unknown[0]!r}: not a CPU name of the plan. Fix: one of {sorted(known)} "
            "(salt-run energy.summary lists them), or leave cpus out for all")
    return wanted


def _influx_targets(facts, cpu):
    """``[(minion, container, database)]`` of the InfluxDBs that hold ``cpu``'s power in the plan."""
    boxes = facts["boxes"]
    found = []
    for frm, to, database in facts["edges"]:
        if boxes.get(frm, {}).get("component") == "formula" and boxes[frm]["cpu"] == cpu and to in boxes:
            target = (boxes[to]["minion"], to, database)
            if target not in found:
                found.append(target)
    return sorted(found)


def _dest_dir(dest, stamp):
    default = os.path.join(__opts__["cachedir"], "energy", "backups")
    if dest in (None, ""):
        os.makedirs(default, mode=0o700, exist_ok=True)
        dest = default
    elif not os.path.isdir(dest):
        raise core.archive.ArchiveError(f"dest: bad value {dest!r}: no such directory on the master. Fix: create it "
                                        f"(mkdir -p {dest}), or leave dest out ({default})")
    directory = os.path.join(dest, f"energy-backup-{stamp}")
    try:
        os.makedirs(directory, mode=0o700)
    except OSError as exc:
        raise core.archive.ArchiveError(f"dest: bad value {dest!r}: cannot write there ({exc.strerror}). Fix: a "
                                        "directory the salt-master user can write") from exc
    return directory


def _pushed(minion, upload):
    """Where ``cp.push`` put a minion's file on this master."""
    return os.path.join(__opts__["cachedir"], "minions", minion, "files", upload)


def _check_file_recv():
    if not __opts__.get("file_recv"):
        raise core.archive.ArchiveError(
            "file_recv: bad value False in the master config: archives come back from the minions with cp.push. "
            "Fix: file_recv: True and file_recv_max_size (MB, default 100) above the largest database, in "
            "/etc/salt/master.d/, then restart salt-master")


def _keep(directory, source, name, size, sha256):
    """Move a pushed archive into the backup directory once there is room for it, and check it."""
    import shutil  # pylint: disable=import-outside-toplevel

    free = shutil.disk_usage(directory).free
    if free < size:
        os.remove(source)
        raise core.archive.ArchiveError(
            f"dest: no space for {name}: it has {size} bytes, {directory} has {free} free. Fix: a destination with "
            "more room (dest=), or a shorter range (since=/until=)")
    final = os.path.join(directory, name)
    try:
        shutil.move(source, final)
    except OSError as exc:
        raise core.archive.ArchiveError(f"dest: cannot store {name} in {directory}: {exc}. Fix: a destination with "
                                        "more room (dest=)") from exc
    if core.archive.sha256_of(final) != sha256:
        raise core.archive.ArchiveError(f"{name} arrived damaged on the master (SHA-256 differs): try again")
    return final


def backup(dest=None, cpus=None, since=None, until=None, tgt="*", timeout=3600):
    """
    Back up the power measurements of the plan: for each InfluxDB database (one per CPU name; per
    machine with the dedicated strategy), a consistent backup taken on the live server
    (``influxd backup -portable`` in its container), brought back to the master with ``cp.push``,
    into ``<dest>/energy-backup-<time>/`` with ``manifest.json``: CPU name, database, host, time
    range, points per measurement, size, SHA-256 and the seconds each took.

    dest
        A directory on the master (default: the master's cachedir ``energy/backups``).
    cpus
        CPU names, comma-separated (default: all of the plan).
    since, until
        The time range: RFC 3339, seconds since the epoch, or a duration before now (``2h``);
        ``until`` defaults to now.

    The master needs ``file_recv: True`` and a ``file_recv_max_size`` (MB) above the largest archive.

    CLI Example:

    .. code-block:: bash

        salt-run energy.backup
        salt-run energy.backup dest=/srv/backups cpus="Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz" since=7d
    """
    import shutil  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    started, now = time.monotonic(), time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    try:
        _check_file_recv()
        since_ns = core.archive.parse_time(since, now, "since")
        until_ns = core.archive.parse_time(until, now, "until") if until not in (None, "") else int(now * 1e9)
        if since_ns is not None and since_ns >= until_ns:
            raise core.archive.ArchiveError(f"since: bad value {since!r}: it is not before until. Fix: an earlier "
                                            "since, or a later until")
        facts = _combined(tgt, 30)
        if "plan" in facts["differences"]["errors"]:
            raise core.archive.ArchiveError(f"no plan to back up: {facts['differences']['errors']['plan']}")
        chosen = _cpu_list(cpus, facts["cpus"])
        targets = [(cpu, t) for cpu in chosen for t in _influx_targets(facts, cpu)]
        down = sorted({m for _c, (m, _n, _d) in targets} & set(facts["differences"]["no_answer"]))
        if down:
            raise core.archive.ArchiveError(f"minion {down[0]} holds an InfluxDB to back up and did not answer. Fix: "
                                            "bring it back (salt-run manage.status), or leave its CPU names out (cpus=)")
        directory = _dest_dir(dest, stamp)
    except core.archive.ArchiveError as exc:
        return _failed(str(exc))
    entries = []
    try:
        for i, (cpu, (minion, container, database)) in enumerate(targets, start=1):
            name = f"influxdb-{core.names.safe_minion(minion)}-{database}.tar.gz"
            upload = f"energy-backup/{stamp}/{name}"
            _progress(f"backup {i}/{len(targets)}: {database} ({cpu}) on {minion}")
            answers, errors = _ask([minion], "energy.backup_influxdb", timeout, database=database, since=since_ns,
                                   until=until_ns, upload=upload, job=stamp)
            if minion not in answers:
                raise core.archive.ArchiveError(f"backup of {database} on {minion} failed: "
                                                f"{errors.get(minion, 'no answer')}")
            got = answers[minion]
            _keep(directory, _pushed(minion, upload), name, got["size"], got["sha256"])
            entries.append({"kind": "influxdb", "cpu": cpu, "database": database, "host": minion,
                            "container": container, "file": name, "size": got["size"], "sha256": got["sha256"],
                            "points": got["points"], "first": got["first"], "last": got["last"],
                            "seconds": got["seconds"]})
            _progress(f"backup {i}/{len(targets)}: {database} done, {got['size']} bytes, "
                      f"{sum(got['points'].values())} points in {got['seconds']} s")
    except core.archive.ArchiveError as exc:
        shutil.rmtree(directory, ignore_errors=True)  # no half backup that looks whole
        return _failed(str(exc))
    if not entries:
        shutil.rmtree(directory, ignore_errors=True)
        return _failed("nothing to back up: the plan has no InfluxDB for these CPU names")
    manifest = core.archive.manifest(entries, since_ns, until_ns, facts["strategy"], time.monotonic() - started, now)
    with open(os.path.join(directory, core.archive.MANIFEST), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
    return {"result": True, "backup": directory, "databases": len(entries),
            "bytes": sum(e["size"] for e in entries), "seconds": manifest["seconds"],
            "points": {f"{e['host']}/{e['database']}": sum(e["points"].values()) for e in entries}}


CHUNK = 512 * 1024  # bytes per cp.recv_chunked call (salt-cp --chunked does the same)


def _send(minion, source, dest):
    """Copy a file of the master to ``dest`` on ``minion``, chunk by chunk (what salt-cp --chunked
    does with cp.recv_chunked)."""
    import base64  # pylint: disable=import-outside-toplevel

    with open(source, "rb") as handle, _client() as client:
        index = 0
        for block in iter(lambda: handle.read(CHUNK), b""):
            ret = client.cmd([minion], "cp.recv_chunked", [dest, base64.b64encode(block), index > 0, False, 0o600],
                             tgt_type="list", timeout=120)
            if (ret or {}).get(minion) is not True:
                raise core.archive.ArchiveError(f"sending {os.path.basename(source)} to {minion} failed: "
                                                f"{(ret or {}).get(minion, 'no answer')}")
            index += 1


def _restore_target(facts, entry):
    """Where a backed-up database goes in the current plan: the same host and database when the plan
    still has it, else the one InfluxDB of the CPU name."""
    targets = [t for t in _influx_targets(facts, entry["cpu"]) if t[2] == entry["database"]]
    same = [t for t in targets if t[0] == entry["host"]]
    if same or len(targets) == 1:
        return (same or targets)[0]
    if not targets:
        raise core.archive.ArchiveError(
            f"the backup's CPU name {entry['cpu']!r} (database {entry['database']}) has no InfluxDB in the current plan. "
            "Fix: deploy it first (salt-run state.orchestrate energy.orch with its sensors), or leave it out (cpus=)")
    raise core.archive.ArchiveError(
        f"the backup of {entry['database']} from {entry['host']} could go to {len(targets)} InfluxDBs of the current "
        f"plan ({', '.join(t[0] for t in targets)}; the dedicated strategy): it holds several machines and a restore "
        "does not split it. Fix: restore under the strategy it was taken with, then switch strategies")


def restore(src, cpus=None, tgt="*", stop_formulas=False, timeout=3600):
    """
    Restore a backup of ``salt-run energy.backup`` into the current plan, also when the stack moved
    to other hosts or was purged. The backup is checked first (manifest, sizes and SHA-256 of every
    archive): a foreign or corrupt one is refused before anything is written. Each database is
    restored into a temporary one and copied in with ``SELECT * INTO ... GROUP BY *``: into a
    database that already has data, it merges without duplicates.

    src
        The backup directory (holding manifest.json).
    cpus
        CPU names, comma-separated (default: all of the backup).
    stop_formulas
        A running SmartWatts of a restored CPU name makes the restore refuse. ``True``: put each in
        maintenance, stop it, restore, start it again and end the maintenance.

    CLI Example:

    .. code-block:: bash

        salt-run energy.restore src=/srv/backups/energy-backup-20261126T101500Z stop_formulas=True
    """
    import time  # pylint: disable=import-outside-toplevel

    started = time.monotonic()
    try:
        manifest = core.archive.check(src)
        facts = _combined(tgt, 30)
        if "plan" in facts["differences"]["errors"]:
            raise core.archive.ArchiveError(f"no plan to restore into: {facts['differences']['errors']['plan']}")
        in_backup = sorted({e["cpu"] for e in manifest["entries"]})
        chosen = _cpu_list(cpus, in_backup)
        entries = [e for e in manifest["entries"] if e["cpu"] in chosen]
        plan = [(entry, _restore_target(facts, entry)) for entry in entries]
        formulas = sorted(n for n, b in facts["boxes"].items() if b["component"] == "formula" and b["cpu"] in chosen)
        running = [n for n in formulas if facts["boxes"][n]["state"] == "running"]
        if running and not stop_formulas:
            raise core.archive.ArchiveError(
                f"SmartWatts {running[0]} is running and writes into a database to restore. Fix: stop_formulas=True "
                "(the restore stops them in a maintenance window and starts them again), or stop them yourself: "
                f"salt {facts['boxes'][running[0]]['minion']} energy.maintenance on {running[0]}, then "
                f"salt {facts['boxes'][running[0]]['minion']} docker.stop {running[0]}")
    except core.archive.ArchiveError as exc:
        return _failed(str(exc))
    stopped = []
    results = []
    try:
        for name in running:
            minion = facts["boxes"][name]["minion"]
            _ask([minion], "energy.maintenance", 60, action="on", what=name, reason="salt-run energy.restore", hours=6)
            _ask([minion], "docker.stop", 120, name=name)
            stopped.append((minion, name))
            _progress(f"restore: SmartWatts {name} on {minion} stopped")
        job = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for i, (entry, (minion, container, database)) in enumerate(plan, start=1):
            _progress(f"restore {i}/{len(plan)}: {entry['file']} ({entry['size']} bytes) to {database} on {minion}")
            cachedir, _ = _ask([minion], "config.get", 30, key="cachedir")
            if minion not in cachedir:
                raise core.archive.ArchiveError(f"minion {minion} did not answer")
            remote = f"{cachedir[minion]}/energy/transfer/restore-{job}-{i}.tar.gz"
            _send(minion, os.path.join(src, entry["file"]), remote)
            answers, errors = _ask([minion], "energy.restore_influxdb", timeout, archive=remote, database=database,
                                   sha256=entry["sha256"], source_database=entry["database"], job=f"{job}_{i}",
                                   points=core.archive.points_of(entry.get("points")))
            if minion not in answers:
                raise core.archive.ArchiveError(f"restore of {entry['file']} into {database} on {minion} failed: "
                                                f"{errors.get(minion, 'no answer')}")
            got = answers[minion]
            results.append({"file": entry["file"], "cpu": entry["cpu"], "host": minion, "database": database,
                            "backed_up": entry["points"], "written": got["written"], "seconds": got["seconds"]})
            _progress(f"restore {i}/{len(plan)}: {database} done, {got['written']} points written in {got['seconds']} s")
    except core.archive.ArchiveError as exc:
        return _failed(str(exc) + (f" (restored before the failure: {[r['database'] for r in results]})"
                                   if results else ""))
    finally:
        for minion, name in stopped:
            _ask([minion], "docker.start", 120, name=name)
            _ask([minion], "energy.maintenance", 60, action="off", what=name)
            _progress(f"restore: SmartWatts {name} on {minion} started again")
    return {"result": True, "restored": results, "seconds": round(time.monotonic() - started, 2)}


def export(dest, since=None, until=None, cpus=None, format="csv", per_cpu=True, tgt="*", timeout=3600):  # pylint: disable=redefined-builtin
    """
    Power per container over a time range, for analysis (pandas, R): ``format=csv`` (columns
    ``time,minion,cpu,container,scope,watts``; the sockets of one time summed) or ``format=line``
    (InfluxDB line protocol of the raw points). One file per CPU name (``per_cpu=True``, named
    after its database) or one file (``power.csv`` / ``power.lp``), in directory ``dest`` on the
    master. InfluxDB streams the answer in chunks and the minion writes it compressed as it comes;
    nothing holds the whole range in memory.

    CLI Example:

    .. code-block:: bash

        salt-run energy.export dest=/srv/exports since=2026-11-26T08:00:00Z until=2026-11-26T12:00:00Z
        salt-run energy.export dest=/srv/exports since=1d format=line per_cpu=False
    """
    import gzip  # pylint: disable=import-outside-toplevel
    import shutil  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    started, now = time.monotonic(), time.time()
    job = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    try:
        _check_file_recv()
        if format not in core.archive.FORMATS:
            raise core.archive.ArchiveError(f"format: bad value {format!r}: one of {', '.join(core.archive.FORMATS)}")
        if not dest or not os.path.isdir(dest):
            raise core.archive.ArchiveError(f"dest: bad value {dest!r}: no such directory on the master. Fix: create "
                                            "it (mkdir -p), then give it as dest=")
        since_ns = core.archive.parse_time(since, now, "since")
        until_ns = core.archive.parse_time(until, now, "until")
        facts = _combined(tgt, 30)
        if "plan" in facts["differences"]["errors"]:
            raise core.archive.ArchiveError(f"no plan to export from: {facts['differences']['errors']['plan']}")
        chosen = _cpu_list(cpus, facts["cpus"])
    except core.archive.ArchiveError as exc:
        return _failed(str(exc))
    suffix = "csv" if format == "csv" else "lp"
    files, rows = {}, 0
    targets = [(cpu, t) for cpu in chosen for t in _influx_targets(facts, cpu)]
    try:
        for i, (cpu, (minion, _container, database)) in enumerate(targets, start=1):
            name = f"{database}.{suffix}" if per_cpu else f"power.{suffix}"
            final = os.path.join(dest, name)
            upload = f"energy-export/{job}/{i}.gz"
            _progress(f"export {i}/{len(targets)}: {database} ({cpu}) on {minion}")
            answers, errors = _ask([minion], "energy.export_influxdb", timeout, database=database, cpu=cpu,
                                   since=since_ns, until=until_ns, fmt=format, upload=upload, job=f"{job}_{i}")
            if minion not in answers:
                raise core.archive.ArchiveError(f"export of {database} on {minion} failed: "
                                                f"{errors.get(minion, 'no answer')}")
            pushed = _pushed(minion, upload)
            fresh = final not in files
            with gzip.open(pushed, "rb") as part, open(final, "wb" if fresh else "ab") as out:
                if fresh and format == "csv":
                    out.write((",".join(core.archive.CSV_COLUMNS) + "\n").encode())
                shutil.copyfileobj(part, out, 1 << 20)
            os.remove(pushed)
            files[final] = files.get(final, 0) + answers[minion]["rows"]
            rows += answers[minion]["rows"]
            _progress(f"export {i}/{len(targets)}: {answers[minion]['rows']} rows of {database}")
    except (core.archive.ArchiveError, OSError) as exc:
        return _failed(str(exc))
    return {"result": True, "files": files, "rows": rows, "seconds": round(time.monotonic() - started, 2)}
