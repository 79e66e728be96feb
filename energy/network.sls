{#- The stack's own Docker network (energy:network:name, a user-defined bridge), on a minion that
    runs a container of the plan, before its containers: every container joins it (none shares the
    host's network) and reaches the databases of its own Docker engine on it by container name.
    Included by every component's SLS and by energy.heal. #}
{%- from tpldir ~ "/plan.jinja" import energy, node with context %}
{%- if node.containers %}
energy-stack-network-present:
  energy_network.present:
    - name: {{ energy.network.name | json }}
{%- else %}
energy-stack-network-nop:
  test.nop:
    - name: the plan gives {{ grains['id'] | json }} no container, so no network
{%- endif %}
