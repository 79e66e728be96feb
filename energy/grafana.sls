{#- Grafana on the grafana minion, when energy:grafana:enabled: provisioned from files (one
    datasource per CPU name, on the InfluxDB the plan chose; the energy dashboard). #}
{%- from tpldir ~ "/plan.jinja" import mine with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{%- set watch = [] %}
{%- for c in mine.containers if c.component == 'grafana' %}
{%- for path, data in c.provisioning | dictsort %}
energy-grafana-provisioning-managed-{{ path }}:
  file.serialize:
    - name: {{ c.provisioning_dir }}/{{ path }}
    - dataset: {{ data | json }}
    - serializer: yaml
    - makedirs: True
    - mode: '0644'  # read by the grafana user (uid 472) in the container
{%- do watch.append('file: energy-grafana-provisioning-managed-' ~ path) %}
{% endfor %}
energy-grafana-dashboard-managed:
  file.managed:
    - name: {{ c.provisioning_dir }}/dashboards/energy.json
    - source: salt://{{ tpldir }}/files/dashboard.json
    - makedirs: True
    - mode: '0644'
{%- do watch.append('file: energy-grafana-dashboard-managed') %}
{% endfor %}
{{ deploy('grafana', mine, watch=watch) }}
