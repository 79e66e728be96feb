{#- Example: an application container that knows where its own power is.
      salt <minion> state.apply examples.energy_app
    It receives MONITORING_ENERGY (InfluxDB URL), MONITORING_ENERGY_DB and its own container name,
    and prints its power every 5 s (docker logs example-<minion>). Image: pillar
    energy_example:image (default python:3.11-slim). #}
{%- from "energy/influx.jinja" import energy_influx with context %}
{%- set name = 'example-' ~ grains['id'] %}
{%- set script_dir = '/etc/energy-example/' ~ name %}
{%- if not energy_influx %}
energy-example-unmonitored-fail:
  test.fail_without_changes:
    - name: {{ (grains['id'] ~ ' runs no energy sensor (energy:roles:sensors), so no power is measured here') | json }}
{%- else %}
energy-example-script-managed:
  file.managed:
    - name: {{ (script_dir ~ '/show_power.py') | json }}
    - source: salt://{{ tpldir }}/files/show_power.py
    - makedirs: True
    - mode: '0644'

energy-example-container-running:
  docker_container.running:
    - name: {{ name | json }}
    - image: {{ salt['pillar.get']('energy_example:image', 'python:3.11-slim') | json }}
    - command: ["python3", "-u", "/app/show_power.py"]
    - binds: {{ [script_dir ~ '/show_power.py:/app/show_power.py:ro'] | json }}
    - network_mode: host
    - environment:
        MONITORING_ENERGY: {{ energy_influx.url | json }}
        MONITORING_ENERGY_DB: {{ energy_influx.database | json }}
        MONITORING_CONTAINER: {{ name | json }}
        MONITORING_SENSOR: {{ energy_influx.sensor | json }}
    - labels:
        energy.example: {{ grains['id'] | json }}
    - watch:
      - file: energy-example-script-managed
{%- endif %}
