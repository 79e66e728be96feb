{#- This minion's whole part of the stack, in dependency order (what a highstate applies): the
    component table's deploy order (salt-call energy.components).
    Across minions, run `salt-run state.orchestrate energy.orch` instead: it orders the phases. #}
include:
{%- for component in salt['energy.components']() %}
  - {{ tpldir.split('/')[0] }}.{{ component.name }}
{%- endfor %}
