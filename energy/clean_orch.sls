{#- salt-run state.orchestrate energy.clean_orch
    Removes the stack from every minion of every role (energy.clean: heal schedule and engine
    first, then containers in reverse order; data volumes only when energy:clean:purge_data is
    true), and the energy reaction from this master's reactor. #}
{%- from tpldir ~ "/orch_targets.jinja" import all_targets, down, sync_done, sync_steps, lock_release with context %}
{{ sync_steps("energy.clean_orch") }}

energy-reactor-reaction-absent-runner:
  salt.runner:
    - name: energy.reactor
    - enabled: False
    - require:
      - salt: energy-orch-runners-sync-runner

energy-orch-clean-apply-orch:
  salt.state:
    - queue: True  {#- waits for a state run already there (the heal schedule) instead of failing #}
    - tgt: {{ all_targets | json }}
    - tgt_type: compound
    - sls:
      - energy.clean
    - require:
      - {{ sync_done }}
{{ lock_release(['energy-orch-clean-apply-orch', 'energy-reactor-reaction-absent-runner']) }}
{%- if down %}

energy-orch-minions-answer-fail:
  test.fail_without_changes:
    - name: {{ ("minion(s) " ~ down | join(', ') ~ " did not answer: the stack is still on them; run "
                ~ "salt-run state.orchestrate energy.clean_orch again once they are back") | json }}
{%- endif %}
