"""The experiment's energy from SmartWatts' output, the computing part: what ``salt-run energy.report``
asks of each InfluxDB (read on the minion that holds it, in time slices streamed in chunks) and how
it folds the points into joules, coverage, gaps and the model's error.

SmartWatts 2.1 writes measurement ``power_consumption``, field ``power`` (watts), tags ``sensor``
(the sensor's name: its minion id), ``target`` (a container, ``rapl``: the package power RAPL
measured, ``global``: the model's estimate the containers share), ``scope`` (``cpu`` or ``dram``)
and ``socket``. One point stands for one sensor tick of ``period`` seconds ending at... wherever
the sensor stamped it: a point at ``t`` counts for ``[t, t + period)``. Energy is the sum of
``power x period`` over the points in the window; a stretch without a point is a gap, reported
with its times, and never filled in (no interpolation). The sockets of one tick are summed.
"""

import math

MEASUREMENT = "power_consumption"
SPECIAL = ("rapl", "global")  # SmartWatts' own targets: measured package power, model estimate
SLICE_S = 600  # seconds of one query: a window is read slice by slice, each streamed in chunks
ERROR_STEP = 0.01  # % per histogram bin of the model's error: percentiles exact to 0.01 %
ERROR_BINS = 100_000  # errors of 1000 % and more share the last bin
MAX_GAPS = 200  # gaps kept per machine (the count says how many more there were)
MAX_BUCKETS = 720  # time buckets of a plot's power series


class ReportError(ValueError):
    """Bad input to a report: the message names the value and the fix."""


def slices(since, until, width=SLICE_S * 10**9):
    """``[(start, end)]`` nanoseconds covering ``[since, until)``, each at most ``width`` long."""
    if since is None or until is None or since >= until:
        raise ReportError(f"since: bad value {since!r}: a report needs a window with since before until. Fix: "
                          "since=<time> until=<later time>, or experiment=<name>")
    return [(start, min(start + width, until)) for start in range(int(since), int(until), int(width))]


def statement(start, end):
    """The InfluxQL of one slice: every point of ``[start, end)``, per sensor, target and scope."""
    return (f'SELECT "power" FROM "{MEASUREMENT}" WHERE time >= {int(start)} AND time < {int(end)} '
            'GROUP BY "sensor","target","scope"')


def percentile(histogram, fraction):
    """The nearest-rank percentile (``fraction`` of 1) of a histogram ``{bin: count}`` of
    ``ERROR_STEP`` bins, as a value; None when it is empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return round(index * ERROR_STEP, 2)
    return None  # unreachable


def error_bin(rapl_w, global_w):
    """The histogram bin of one tick's model error ``|global - rapl| / rapl`` (percent), or None
    when RAPL measured nothing to compare with."""
    if not rapl_w or rapl_w <= 0:
        return None
    return min(int(round(abs(global_w - rapl_w) / rapl_w * 100 / ERROR_STEP)), ERROR_BINS)


class Gaps:
    """The stretches of ``[since, until)`` no tick covers, ``[[start, end]]`` in nanoseconds, from
    tick times fed in order (slice after slice). A tick covers ``[t, t + period)``, so the tick
    before ``since`` covers up to one period of the window's start; a stretch shorter than half a
    period is the sensor's jitter, not a gap. At most ``MAX_GAPS`` are kept, ``more`` counts the
    others."""

    def __init__(self, since, period_ns):
        self.since, self.covered_to, self.period_ns, self.found, self.more, self.ticks = \
            since, since, period_ns, [], 0, 0

    def _add(self, start, end, slack):
        if end - start > slack:
            if len(self.found) < MAX_GAPS:
                self.found.append([start, end])
            else:
                self.more += 1

    def tick(self, stamp):
        first = self.ticks == 0
        self.ticks += 1
        self._add(self.covered_to, stamp, self.period_ns + self.period_ns // 2 if first else self.period_ns // 2)
        self.covered_to = max(self.covered_to, stamp + self.period_ns)

    def end(self, until):
        """The gaps once the window ends at ``until``."""
        found = list(self.found)
        if until - self.covered_to > self.period_ns // 2:
            found.append([self.covered_to, until])
        return found


class Accumulator:
    """Folds the answer of ``statement`` (epoch=ns), slice after slice, into per machine and per
    target sums. ``feed`` takes series as InfluxDB streams them (a series may come in parts);
    ``close_slice`` folds a slice in; ``result`` is what the InfluxDB's minion returns (small:
    sums, a histogram, gaps, and ``buckets`` power means per target when asked for a plot)."""

    def __init__(self, since, until, period_s, buckets=0):
        self.since, self.until = int(since), int(until)
        self.period_ns = int(round(period_s * 1e9))
        self.period_s = period_s
        self.buckets = min(int(buckets or 0), MAX_BUCKETS)
        self.slice = {}  # (sensor, target) -> {time: {scope: watts}}
        self.sensors = {}
        self.targets = {}

    def feed(self, series):
        tags = series.get("tags") or {}
        sensor, target, scope = tags.get("sensor", ""), tags.get("target", ""), tags.get("scope", "") or "cpu"
        columns = series.get("columns") or []
        at, power = columns.index("time"), columns.index("power")
        ticks = self.slice.setdefault((sensor, target), {})
        for values in series.get("values") or []:
            watts = values[power]
            if watts is None or not isinstance(watts, (int, float)) or not math.isfinite(watts):
                continue
            scopes = ticks.setdefault(int(values[at]), {})
            scopes[scope] = scopes.get(scope, 0.0) + float(watts)  # the sockets of one tick summed

    def _machine(self, sensor):
        return self.sensors.setdefault(sensor, {"gaps": Gaps(self.since, self.period_ns), "scope_j": {},
                                                "global_j": 0.0, "global_ticks": 0, "errors": {}})

    def _target(self, sensor, target):
        return self.targets.setdefault(sensor, {}).setdefault(target, {
            "scope_j": {}, "ticks": 0, "peak_w": 0.0, "first": None, "last": None,
            "buckets": [0.0] * self.buckets if self.buckets else None})

    def close_slice(self):
        for (sensor, target), ticks in sorted(self.slice.items()):
            if target == "rapl":
                machine = self._machine(sensor)
                for stamp in sorted(ticks):
                    machine["gaps"].tick(stamp)
                for scopes in ticks.values():
                    for scope, watts in scopes.items():
                        machine["scope_j"][scope] = machine["scope_j"].get(scope, 0.0) + watts * self.period_s
                globals_ = self.slice.get((sensor, "global"), {})
                for stamp, scopes in ticks.items():
                    found = error_bin(scopes.get("cpu"), (globals_.get(stamp) or {}).get("cpu", 0.0))
                    if found is not None and stamp in globals_:
                        machine["errors"][found] = machine["errors"].get(found, 0) + 1
            elif target == "global":
                machine = self._machine(sensor)
                machine["global_j"] += sum(s.get("cpu", 0.0) for s in ticks.values()) * self.period_s
                machine["global_ticks"] += sum(1 for s in ticks.values() if "cpu" in s)
            else:
                self._fold_target(self._target(sensor, target), ticks)
        self.slice = {}

    def _fold_target(self, entry, ticks):
        width = (self.until - self.since) / self.buckets if self.buckets else None
        for stamp, scopes in sorted(ticks.items()):
            for scope, watts in scopes.items():
                entry["scope_j"][scope] = entry["scope_j"].get(scope, 0.0) + watts * self.period_s
            total = sum(scopes.values())
            entry["ticks"] += 1
            entry["peak_w"] = max(entry["peak_w"], total)
            entry["first"] = stamp if entry["first"] is None else min(entry["first"], stamp)
            entry["last"] = stamp if entry["last"] is None else max(entry["last"], stamp)
            if width:
                entry["buckets"][min(int((stamp - self.since) / width), self.buckets - 1)] += total * self.period_s

    def result(self):
        """The answer of one database: plain data, as the master checks it."""
        self.close_slice()
        machines = {}
        for sensor, machine in sorted(self.sensors.items()):
            tracked = machine["gaps"]
            machines[sensor] = {
                "ticks": tracked.ticks, "rapl_j": machine["scope_j"].get("cpu", 0.0),
                "rapl_dram_j": machine["scope_j"].get("dram"), "global_j": machine["global_j"],
                "global_ticks": machine["global_ticks"], "gaps": tracked.end(self.until), "more_gaps": tracked.more,
                "errors": sorted([k, v] for k, v in machine["errors"].items()),
            }
        for sensor in self.targets:
            if sensor not in machines:  # containers without RAPL points: the whole window is a gap
                machines[sensor] = {"ticks": 0, "rapl_j": 0.0, "rapl_dram_j": None, "global_j": 0.0, "global_ticks": 0,
                                    "gaps": [[self.since, self.until]], "more_gaps": 0, "errors": []}
        return {"since": self.since, "until": self.until, "period_s": self.period_s, "buckets": self.buckets,
                "machines": machines,
                "targets": {sensor: dict(sorted(found.items())) for sensor, found in sorted(self.targets.items())}}
