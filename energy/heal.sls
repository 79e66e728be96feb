{#- Self-healing on this minion: a health state per container of the plan (recreate what died or
    stopped answering, log it, fire energy/heal/<component>), two schedules (the light check
    energy_heal.heal_check every energy:heal:schedule:seconds, the full state run every full_seconds), and
    the docker_events engine whose die/destroy events the master's reactor turns into
    energy_heal.react. Containers in maintenance (energy_heal.maintenance) are left alone. #}
{%- from tpldir ~ "/plan.jinja" import energy, node with context %}
{%- from tpldir ~ "/names.jinja" import heal_schedule, heal_full_schedule %}
{%- set heal = energy.heal %}
include:
  - {{ tpldir.split('/')[0] }}.network  {#- a container recreated here joins the stack's network #}
{%- for c in node.containers if c.component in heal.components %}
energy-{{ c.component }}-health-healthy-{{ c.name }}:
  energy_heal.healthy:
    - name: {{ c.name | json }}
    - component: {{ c.component }}
    - run: {{ c.run | json }}
    - probe: {{ c.health | json }}
    - grace: {{ heal.grace_seconds }}
    - timeout: {{ heal.timeout }}
    {#- the orch's last phase applies this file with the components' and runs with failhard: a
        container found unhealthy fails the run, but after the watches of what the run started
        (energy_heal.stays_up, order: last) and the schedules and engine below #}
    - failhard: False
    - require:
      - energy_network: energy-stack-network-present
{% endfor %}
{#- what energy_heal.heal_check (the light check) reads: this minion's containers and their checks, kept
    0600 in its cachedir (the checks hold the formula's MongoDB password) #}
energy-heal-node-kept:
  energy_heal.node_kept:
    - name: {{ salt['energy_heal.node_kept_file']() | json }}

{%- if heal.schedule.enabled %}
energy-heal-schedule-present:
  schedule.present:
    - name: {{ heal_schedule }}
    - function: energy_heal.heal_check
    - seconds: {{ heal.schedule.seconds }}
    - splay: {{ heal.schedule.splay }}
    - maxrunning: 1
    {#- Salt runs an interval job at once whenever the minion loads its schedule: at start, and at
        each module refresh (every orch refreshes the modules) #}
    - run_on_start: False
    {#- no return to the master every minute from every minion (its job cache would grow with the
        fleet): what the check recreates is logged, fired as energy/heal/<component> and kept in
        <cachedir>/energy/health.json; salt <minion> energy_heal.heal_check returns it on demand #}
    - return_job: False
    - require:
      - energy_heal: energy-heal-node-kept
{%- else %}
energy-heal-schedule-absent:
  schedule.absent:
    - name: {{ heal_schedule }}
{%- endif %}
{%- if heal.schedule.enabled and heal.schedule.full_seconds %}
energy-heal-full-schedule-present:
  schedule.present:
    - name: {{ heal_full_schedule }}
    - function: state.apply
    - job_kwargs:
        mods: energy,energy.heal
    - seconds: {{ heal.schedule.full_seconds }}
    - splay: {{ heal.schedule.splay }}
    - maxrunning: 1
    - run_on_start: False  {#- not a full state run at every orch's module refresh, next to the orch's own #}
{%- else %}
energy-heal-full-schedule-absent:
  schedule.absent:
    - name: {{ heal_full_schedule }}
{%- endif %}

energy-heal-engine-managed:
  energy_heal.events_engine:
    - name: {{ salt['energy_heal.engine_file']() | json }}
    - enabled: {{ heal.events.enabled }}
    - restart: {{ heal.events.restart_minion }}
    - order: last
