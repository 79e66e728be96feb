{#- This minion's whole part of the stack, in dependency order (what a highstate applies).
    Across minions, run `salt-run state.orchestrate energy.orch` instead: it orders the phases. #}
include:
  - energy.mongo
  - energy.sensor
  - energy.influxdb
  - energy.formula
  - energy.grafana
