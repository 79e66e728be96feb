#!/usr/bin/env bash
# Record what the energy grain reads on this machine into DEST (a tree the grain's unit tests read
# with _collect(root=DEST)): /proc/cpuinfo, the kernel's perf and powercap RAPL files, the core
# PMU's name, perf_event_paranoid, the kernel release, the cgroup layout, the host name. Nothing
# else of the machine is copied.   Usage: scripts/record_machine.sh tests/data/machines/<name>
set -euo pipefail
dest="${1:?usage: $0 DEST}"
mkdir -p "$dest"
copy() {  # copy FILE...: each existing regular file, keeping its path under DEST
  for f in "$@"; do
    [ -f "$f" ] || continue
    mkdir -p "$dest$(dirname "$f")"
    cat "$f" >"$dest$f"
  done
}
copy /proc/cpuinfo /proc/cgroups /proc/sys/kernel/hostname /proc/sys/kernel/osrelease /proc/sys/kernel/perf_event_paranoid
copy /sys/bus/event_source/devices/cpu/type /sys/bus/event_source/devices/cpu/caps/pmu_name
copy /sys/bus/event_source/devices/power/events/* /sys/fs/cgroup/cgroup.controllers
for zone in /sys/class/powercap/intel-rapl:*; do
  copy "$zone/name" "$zone/constraint_0_power_limit_uw"
done
copy /sys/devices/system/cpu/cpu0/cpufreq/base_frequency /sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq
[ -d /sys/fs/cgroup/perf_event ] && mkdir -p "$dest/sys/fs/cgroup/perf_event" && : >"$dest/sys/fs/cgroup/perf_event/tasks"
echo "recorded $(find "$dest" -type f | wc -l) files in $dest"
