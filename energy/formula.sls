{#- SmartWatts per CPU name on the minions the plan chose; each starts once its MongoDB and its
    InfluxDB answer, and the run fails naming the service when one does not. #}
{%- from tpldir ~ "/plan.jinja" import mine with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{%- for c in mine.containers if c.component == 'formula' %}
energy-formula-mongo-reachable-{{ c.name }}:
  energy.reachable:
    - name: {{ c.mongo_uri }}
    - service: {{ ("mongo for " ~ c.cpu) | json }}
    - timeout: {{ c.ready_timeout }}

energy-formula-influxdb-reachable-{{ c.name }}:
  energy.reachable:
    - name: {{ c.influxdb_url }}
    - service: {{ ("influxdb for " ~ c.cpu) | json }}
    - timeout: {{ c.ready_timeout }}
{% endfor %}
{{ deploy('formula', mine, require=['energy: energy-formula-mongo-reachable-NAME',
                                    'energy: energy-formula-influxdb-reachable-NAME']) }}
