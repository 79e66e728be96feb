{#- salt-run state.orchestrate energy.orch
    Deploys the stack: sync the formula's modules, refresh the mine, check pillar and plan on every
    minion (nothing is touched if that fails), then mongos -> sensors -> influxdbs -> formulas ->
    grafana, then the health checks and the heal schedule (energy.heal). Each phase targets its role; each minion deploys only what the plan gives it. #}
{%- from tpldir ~ "/targets.jinja" import targets, all_targets, sync_steps with context %}

{{ sync_steps() }}

energy-orch-mine-update-function:
  salt.function:
    - name: mine.send
    - arg:
      - energy.facts
    - tgt: {{ all_targets | json }}
    - tgt_type: compound
    - failhard: True
    - require:
      - salt: energy-orch-modules-refresh-function

energy-orch-plan-check-function:
  salt.function:
    - name: energy.plan
    - tgt: {{ all_targets | json }}
    - tgt_type: compound
    - failhard: True
    - require:
      - salt: energy-orch-mine-update-function
{%- set ns = namespace(previous='salt: energy-orch-plan-check-function') %}
{%- for component, role in [('mongo', 'mongos'), ('sensor', 'sensors'), ('influxdb', 'influxdbs'),
                            ('formula', 'formulas'), ('grafana', 'grafana')] if role in targets %}

energy-{{ component }}-deploy-orch:
  salt.state:
    - tgt: {{ targets[role] | json }}
    - tgt_type: compound
    - sls:
      - energy.{{ component }}
    - failhard: True
    - require:
      - {{ ns.previous }}
{%- set ns.previous = 'salt: energy-' ~ component ~ '-deploy-orch' %}
{%- endfor %}

energy-heal-deploy-orch:
  salt.state:
    - tgt: {{ all_targets | json }}
    - tgt_type: compound
    - sls:
      - energy.heal
    - failhard: True
    - require:
      - {{ ns.previous }}
