{#- Self-healing on this minion: a health state per container of the plan (recreate what died or
    stopped answering, log it, fire energy/heal/<component>), the schedule that applies the
    stack and these checks every energy:heal:schedule:seconds (maxrunning 1), and the
    docker_events engine whose die/destroy events the master's reactor turns into energy.react.
    Containers in maintenance (energy.maintenance) are left alone. #}
{%- from tpldir ~ "/plan.jinja" import energy, node with context %}
{%- set heal = energy.heal %}
{%- for c in node.containers if c.component in heal.components %}
energy-{{ c.component }}-health-healthy-{{ c.name }}:
  energy.healthy:
    - name: {{ c.name | json }}
    - component: {{ c.component }}
    - run: {{ c.run | json }}
    - probe: {{ c.health | json }}
    - grace: {{ heal.grace_seconds }}
    - timeout: {{ heal.timeout }}
{% endfor %}
{%- if heal.schedule.enabled %}
energy-heal-schedule-present:
  schedule.present:
    - name: energy-heal
    - function: state.apply
    - job_kwargs:
        mods: energy,energy.heal
    - seconds: {{ heal.schedule.seconds }}
    - splay: {{ heal.schedule.splay }}
    - maxrunning: 1
{%- else %}
energy-heal-schedule-absent:
  schedule.absent:
    - name: energy-heal
{%- endif %}

energy-heal-engine-managed:
  energy.events_engine:
    - name: {{ salt['energy.engine_file']() | json }}
    - enabled: {{ heal.events.enabled }}
    - restart: {{ heal.events.restart_minion }}
    - order: last
