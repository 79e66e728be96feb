{#- InfluxDB per CPU name on the minions the plan chose (receives SmartWatts' power reports), and
    its database with the retention from pillar (1.x; on 2.x the image's setup mode makes the bucket). #}
{%- from tpldir ~ "/plan.jinja" import energy, node with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{{ deploy('influxdb', node, energy.ready_timeout) }}
