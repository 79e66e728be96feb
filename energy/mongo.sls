{#- MongoDB per CPU name on the minions the plan chose (receives the sensors' HWPC reports). #}
{%- from tpldir ~ "/plan.jinja" import energy, node with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{{ deploy('mongo', node, energy.ready_timeout) }}
