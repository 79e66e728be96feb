{#- The first step of energy.orch and energy.clean_orch on every minion: the formula's grains,
    execution and state modules and utils from the master, in one job, then a pillar refresh that
    waits until the minion has loaded the new pillar and, before it, its modules again (Salt's
    pillar refresh reloads the modules first): mine.send and energy.check, the next steps, are
    plain function runs that read the minion's pillar and modules as loaded. saltutil.sync_all
    would ask the file server about every kind of extension Salt has (beacons, clouds, engines,
    ...); the formula ships these four, and this takes less than half the time on the demo. This
    file uses nothing of the formula: a fresh minion has none of it yet. #}
{%- for kind in ["grains", "modules", "states", "utils"] %}

energy-orch-{{ kind }}-sync-saltutil:
  saltutil.sync_{{ kind }}:
    - refresh: False
{%- endfor %}

energy-orch-pillar-refresh-module:
  module.run:
    - saltutil.refresh_pillar:
      - wait: True
      - timeout: 60
