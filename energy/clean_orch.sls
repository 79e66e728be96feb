{#- salt-run state.orchestrate energy.clean_orch
    Removes the stack from every minion of every role (energy.clean: containers in reverse order;
    data volumes only when energy:clean:purge_data is true). #}
{%- from tpldir ~ "/targets.jinja" import all_targets, sync_steps with context %}
{{ sync_steps() }}

energy-orch-clean-apply-orch:
  salt.state:
    - tgt: {{ all_targets | json }}
    - tgt_type: compound
    - sls:
      - energy.clean
    - require:
      - salt: energy-orch-modules-refresh-function
