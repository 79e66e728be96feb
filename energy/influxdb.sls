{#- InfluxDB per CPU name on the minions the plan chose (receives SmartWatts' power reports). #}
{%- from tpldir ~ "/plan.jinja" import mine with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{{ deploy('influxdb', mine) }}
