{#- The hwpc-sensor of this minion: its JSON config file, then the container reading it. #}
{%- from tpldir ~ "/map.jinja" import energy with context %}
{%- from tpldir ~ "/plan.jinja" import mine with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{%- for c in mine.containers if c.component == 'sensor' %}
energy-sensor-config-managed-{{ c.name }}:
  file.serialize:
    - name: {{ c.config_file }}
    - dataset: {{ mine.sensor_configs[c.config_file] | json }}
    - serializer: json
    - makedirs: True
    - mode: '0644'
{% endfor %}
{{ deploy('sensor', mine, watch=['file: energy-sensor-config-managed-NAME']) }}
