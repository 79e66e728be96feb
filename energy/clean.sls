{#- Removes what the energy formula deployed on this minion: the heal schedule and engine, the containers labelled with this
    minion's id (grafana, formulas, influxdbs, sensors, mongos: the reverse of the deployment), the
    sensor config files, and the data volumes only when energy:clean:purge_data is true. #}
{%- from tpldir ~ "/map.jinja" import energy with context %}
{%- from tpldir ~ "/names.jinja" import heal_schedule, heal_full_schedule %}
{%- set deployed = salt['energy_inventory.deployed']() %}
{%- set ns = namespace(previous='energy_heal: energy-heal-engine-absent') %}
{#- first the heal schedule and the engine config (energy_heal.react ignores events without it), or
    they would bring back what this removes #}
energy-heal-schedule-absent:
  schedule.absent:
    - name: {{ heal_schedule }}

energy-heal-full-schedule-absent:
  schedule.absent:
    - name: {{ heal_full_schedule }}

energy-heal-node-kept-absent:
  file.absent:
    - name: {{ salt['energy_heal.node_kept_file']() | json }}

energy-heal-engine-absent:
  energy_heal.events_engine:
    - name: {{ salt['energy_heal.engine_file']() | json }}
    - enabled: False
    - restart: False  {#- not in the middle of this run; energy_heal.react ignores events without the file #}
    - require:
      - schedule: energy-heal-schedule-absent

{%- for c in deployed.containers %}
energy-{{ c.component }}-container-absent-{{ c.name }}:
  docker_container.absent:
    - name: {{ c.name | json }}
    - force: True
    - require:
      - {{ ns.previous }}
{%- set ns.previous = 'docker_container: energy-' ~ c.component ~ '-container-absent-' ~ c.name %}
{% endfor %}
{#- the stack's network goes with the last container of the engine: kept while a container (of
    another minion on the same engine) still uses it #}
energy-stack-network-absent:
  energy_network.absent:
    - name: {{ energy.network.name | json }}
    - require:
      - {{ ns.previous }}
{%- for path in deployed.config_files %}
{{ ('energy-files-absent-' ~ path) | json }}:
  file.absent:
    - name: {{ path | json }}
{% endfor %}
{%- if energy.clean.purge_data %}
{%- for volume in deployed.volumes %}
energy-data-volume-absent-{{ volume }}:
  docker_volume.absent:
    - name: {{ volume | json }}
    - require:
      - {{ ns.previous }}
{% endfor %}
{%- endif %}

energy-clean-done-nop:
  test.nop:
    - name: {{ ('energy stack removed from ' ~ grains['id'] ~ ('' if energy.clean.purge_data else ' (data volumes kept)')) | json }}
