{#- The hwpc-sensor of this minion: its JSON config file, then the container reading it. #}
{%- from tpldir ~ "/plan.jinja" import energy, node with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{%- set facts = grains.get('energy', {}) %}
{{ deploy('sensor', node, energy.ready_timeout) }}
{%- if facts.get('cgroup_version') == 1 and facts.get('cgroup_perf_event')
      and node.containers | selectattr('component', 'equalto', 'sensor') | list %}

{#- cgroup v1 with the perf_event controller enabled (/proc/cgroups) but maybe not mounted: the
    sensor looks for the containers' cgroups under /sys/fs/cgroup/perf_event, and Docker makes
    perf_event/docker/<id> only once the hierarchy is mounted (for the containers it starts after).
    Not persisted in fstab, not undone by clean.sls (other tools may count on it). #}
energy-sensor-mount-perf_event:
  mount.mounted:
    - name: /sys/fs/cgroup/perf_event
    - device: cgroup
    - fstype: cgroup
    - opts: perf_event
    - mkmnt: True
    - persist: False
    - require_in:
      - energy: energy-sensor-orphans-absent
{%- endif %}
