{#- Master reactor for energy/docker/* (the docker_events engine of energy.heal on each minion):
    when a container of the stack dies or is removed, the minion that reported it recreates it
    (energy.react: plan, maintenance and debounce are checked there). The temporary containers
    docker_container.running makes on every run carry the stack's labels under a random name:
    only names of the stack (energy-<minion>-...) are acted on, or each run would trigger another. #}
{%- set event = data.get('data') if data.get('data') is mapping else {} %}
{%- set attributes = (event.get('Actor') or {}).get('Attributes') or {} %}
{%- set name = attributes.get('name', '') %}
{%- set minion = data.get('id', '') %}
{%- set prefix = 'energy-' ~ (minion | regex_replace('[^a-zA-Z0-9_.-]', '-')) ~ '-' %}
{%- if minion and name.startswith(prefix) and attributes.get('energy.minion') == minion %}
energy-heal-react-{{ name }}:
  local.energy.react:
    - tgt: {{ minion | json }}
    - args:
      - name: {{ name | json }}
      - action: {{ event.get('Action', 'die') | json }}
{%- endif %}
