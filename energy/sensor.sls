{#- The hwpc-sensor of this minion: its JSON config file, then the container reading it. #}
{%- from tpldir ~ "/plan.jinja" import energy, node with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{{ deploy('sensor', node, energy.ready_timeout) }}
