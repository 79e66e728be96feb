{#- Grafana on the grafana minion, when energy:grafana:enabled. #}
{%- from tpldir ~ "/plan.jinja" import mine with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{{ deploy('grafana', mine) }}
