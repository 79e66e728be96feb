{#- InfluxDB per CPU name on the minions the plan chose (receives SmartWatts' power reports), and
    its database with the retention from pillar (1.x; on 2.x the image's setup mode makes the bucket). #}
{%- from tpldir ~ "/plan.jinja" import mine with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{{ deploy('influxdb', mine) }}
{%- for c in mine.containers if c.component == 'influxdb' and c.version == 1 and not salt['energy.held'](c.name, 'influxdb') %}
energy-influxdb-database-present-{{ c.name }}:
  energy.influxdb_database:
    - name: {{ c.database }}
    - url: {{ c.url }}
    - retention: {{ c.retention | json }}
    - timeout: {{ c.ready_timeout }}
    - service: {{ ("influxdb for " ~ c.cpu ~ " on " ~ grains['id']) | json }}
    - require:
      - docker_container: energy-influxdb-container-running-{{ c.name }}
{% endfor %}
