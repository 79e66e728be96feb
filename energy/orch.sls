{#- salt-run state.orchestrate energy.orch
    Deploys the stack: sync the formula's modules where the master serves others (and reload them),
    refresh the mine, compute and check the plan on the
    master and hand each minion its part (pillar energy_plan), check each minion's part on it
    (nothing is touched if that fails), then two phases: the databases (MongoDBs, InfluxDBs,
    their users and databases) on the minions of those roles, then the sensors, formulas and
    Grafana, with on every minion the health checks, heal schedule and docker_events engine
    (energy.heal) in the same state run; then the master's reactor for those events. Each minion deploys only what
    the plan gives it. Minions that do not answer are left out of every step (a role whose minions
    all are down is left out of its phase) and named by the last step, which then fails. #}
{%- from tpldir ~ "/orch_targets.jinja" import orch, targets, all_targets, down, roles_down, sync_done, sync_steps, lock_release with context %}

{{ sync_steps("energy.orch") }}

energy-orch-mine-update-function:
  salt.function:
    - name: mine.send
    - arg:
      - energy.facts
    - kwarg:
        fresh: True  {#- energy:facts as the master compiles it now: no pillar refresh needed first #}
    - tgt: {{ all_targets | json }}
    - tgt_type: compound
    - failhard: True
    - require:
      - {{ sync_done }}

{#- the plan, computed once on the master (salt-run energy_plan.prepare): its own pillar through the
    formula's schema, the mine just updated, the placement kept from the last orch (what is
    deployed stays put); checked there (configuration, placement, ports, names, the database moves
    energy:strategy_change guards); each minion's part kept for the energy_plan ext_pillar, which
    gives it to that minion alone. A runner step, not the orch's Jinja: this file is rendered before
    mine.send runs. #}
energy-orch-plan-prepare-runner:
  salt.runner:
    - name: energy_plan.prepare
    - failhard: True
    - require:
      - salt: energy-orch-mine-update-function

{#- every minion loads its new part (pillar energy_plan): the checks below, the state runs, the
    heal schedule and the reactor's energy.react read it #}
energy-orch-plan-refresh-function:
  salt.function:
    - name: saltutil.refresh_pillar
    - tgt: {{ all_targets | json }}
    - tgt_type: compound
    - kwarg:
        wait: True
        timeout: 60
    - failhard: True
    - require:
      - salt: energy-orch-plan-prepare-runner

{#- energy.check: this minion's part of the plan, and what only the minion can see: the containers
    of an earlier plan it would leave (energy:strategy_change), the room for its volumes, the
    secrets its containers need when it builds its own part #}
energy-orch-plan-check-function:
  salt.function:
    - name: energy.check
    - tgt: {{ all_targets | json }}
    - tgt_type: compound
    - failhard: True
    - require:
      - salt: energy-orch-plan-refresh-function
{%- set ns = namespace(previous='salt: energy-orch-plan-check-function') %}
{#- one state run per minion per phase (energy_core.placement.orch_phases): the databases, then the
    sensors, formulas and Grafana; each minion applies only what the plan gives it. The last phase
    reaches every minion and applies energy.heal too (the health checks, heal schedules and engine),
    after the databases phase has put every database up; a container its own run started is left
    to energy_heal.stays_up by the health checks (a sensor that refuses its config is stopped, not
    recreated). #}
{%- for phase in orch.phases %}

energy-{{ phase.name }}-deploy-orch:
  salt.state:
    - queue: True  {#- waits for a state run already there (the heal schedule) instead of failing #}
    - tgt: {{ phase.tgt | json }}
    - tgt_type: compound
    - sls: {{ phase.sls | json }}
    - failhard: True
    - require:
      - {{ ns.previous }}
{%- set ns.previous = 'salt: energy-' ~ phase.name ~ '-deploy-orch' %}
{%- endfor %}

{#- the reactor runs on this master: salt-run energy.reactor writes master.d/energy-reactor.conf,
    read when salt-master starts, and restarts salt-master once this orch has returned when the
    running master has not loaded it (energy:heal:events:restart_master) or warns #}

energy-reactor-reaction-present-runner:
  salt.runner:
    - name: energy.reactor
    - enabled: {{ orch.events_enabled }}
    - restart: {{ orch.restart_master }}
    - require:
      - salt: energy-orch-runners-sync-runner
{{ lock_release([ns.previous.split(': ', 1)[1], 'energy-reactor-reaction-present-runner']) }}
{%- if down %}

energy-orch-minions-answer-fail:
  test.fail_without_changes:
    - name: {{ ("minion(s) " ~ down | join(', ') ~ " did not answer: their part of the stack is not deployed"
                ~ ((" (nothing deployed for " ~ roles_down | join(', ') ~ ": all their minions are down)") if roles_down else "")
                ~ "; run salt-run state.orchestrate energy.orch again once they are back") | json }}
{%- endif %}
