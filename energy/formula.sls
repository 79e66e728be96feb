{#- SmartWatts per CPU name on the minions the plan chose; each starts once its MongoDB and its
    InfluxDB answer, and the run fails naming the service when one does not. #}
{%- from tpldir ~ "/plan.jinja" import energy, node with context %}
{%- from tpldir ~ "/macros.jinja" import deploy with context %}
{{ deploy('formula', node, energy.ready_timeout) }}
