#!/usr/bin/env bash
# Make sure a Docker engine answers on /var/run/docker.sock: install docker.io and start dockerd
# when none runs (the preinstalled `docker` command on these machines is only a client).
set -euo pipefail
docker=/usr/bin/docker
if [ -x "$docker" ] && "$docker" info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1 || [ ! -x "$docker" ]; then
  echo "engine: installing docker.io"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if ! "$docker" info >/dev/null 2>&1; then
  echo "engine: starting dockerd (log: /var/log/dockerd.log)"
  setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 60); do "$docker" info >/dev/null 2>&1 && break; sleep 1; done
fi
"$docker" info >/dev/null 2>&1 || { echo "engine: dockerd did not start; see /var/log/dockerd.log" >&2; tail -n 20 /var/log/dockerd.log >&2; exit 1; }
echo "engine: $("$docker" version --format 'Docker {{.Server.Version}}') ready"
