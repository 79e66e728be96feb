{#- Grafana on the grafana minion, when energy:grafana:enabled: provisioned from files (one
    datasource per CPU name, on the InfluxDB the plan chose; the energy dashboard). #}
{%- from tpldir ~ "/plan.jinja" import energy, node with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{{ deploy('grafana', node, energy.ready_timeout) }}
