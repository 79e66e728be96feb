{#- The first step of energy.orch and energy.clean_orch on every minion: the formula's grains,
    execution and state modules and utils from the master, in one state run (the orch's next step,
    saltutil.refresh_pillar with wait, makes the minion load them, and its pillar, before mine.send
    and energy.check read them). saltutil.sync_all would ask the file server about every kind of
    extension Salt has (beacons, clouds, engines, ...); the formula ships these five, and this
    takes half the time on the demo. This file uses nothing of the formula: a fresh minion has
    none of it yet. #}
{%- for kind in ["engines", "grains", "modules", "states", "utils"] %}

energy-orch-{{ kind }}-sync-saltutil:
  saltutil.sync_{{ kind }}:
    - refresh: False
{%- endfor %}
