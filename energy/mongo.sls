{#- MongoDB per CPU name on the minions the plan chose (receives the sensors' HWPC reports). #}
{%- from tpldir ~ "/plan.jinja" import mine with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{{ deploy('mongo', mine) }}
