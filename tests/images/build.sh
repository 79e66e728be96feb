#!/usr/bin/env bash
# Build the images the tests and the demo use, offline, once: each is tagged by a hash of its
# inputs and skipped when that tag exists. Writes the tags to .cache/images.json.
#   energy-test/base        Debian bookworm minbase (debootstrap + docker import)
#   energy-test/python      base + python3 venv
#   energy-test/mongo       STAND-IN for mongo (secantusdb, MongoDB wire protocol)
#   energy-test/influxdb    real InfluxDB 1.6.7 (Debian)
#   energy-test/smartwatts  real SmartWatts 2.1.2 (PyPI)
#   energy-test/hwpc-sensor-sim  STAND-IN for powerapi/hwpc-sensor (simulated RAPL + counters)
#   energy-test/grafana     STAND-IN for grafana/grafana-oss (reads the provisioning files)
#   energy-test/smartwatts24 real SmartWatts 2.4.1, only to check the influxdb2 config with its parser
#   energy-test/hwpc-sensor-<release>  the REAL hwpc-sensor, built from upstream's release tarballs
#                           found in $HWPC_VENDOR (default: the shared vendor folder beside the
#                           checkout, ../shared/vendor); skipped, and said so, when they are absent.
#                           Releases: $HWPC_SENSOR_RELEASES (default: energy/defaults.yaml's; add
#                           1.3.0 to compare, see docs/versions.md)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="$root/.cache"
docker="${DOCKER:-/usr/bin/docker}"
python="${PYTHON:-python3}"
mkdir -p "$cache/wheels"

exists() { "$docker" image inspect "$1" >/dev/null 2>&1; }
inputs_hash() { (cd "$here/$1" && cat $(ls -A | sort) ; echo "$2") | sha256sum | cut -c1-12; }

base=energy-test/base:bookworm
if ! exists "$base"; then
  echo "build: $base (debootstrap)"
  rm -rf "$cache/rootfs"
  debootstrap --variant=minbase bookworm "$cache/rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
    || { tail -n 20 "$cache/debootstrap.log"; exit 1; }
  tar -C "$cache/rootfs" -c . | "$docker" import - "$base" >/dev/null
  rm -rf "$cache/rootfs"
fi

declare -A tags
build() {  # build NAME PARENT_ARG PARENT_TAG
  local name=$1 arg=$2 parent=$3
  local tag="energy-test/$name:$(inputs_hash "$name" "$parent")"
  tags[$name]=$tag
  if exists "$tag"; then echo "build: $tag (cached)"; return; fi
  echo "build: $tag"
  local ctx; ctx="$(mktemp -d)"
  cp -a "$here/$name/." "$ctx/"
  if [ -f "$here/$name/requirements.txt" ]; then
    mkdir -p "$ctx/wheels"
    "$python" -m pip wheel -q --disable-pip-version-check -w "$cache/wheels/$name" -r "$here/$name/requirements.txt" 2>&1 | grep -v '^WARNING: Location' || true
    cp "$cache/wheels/$name"/*.whl "$ctx/wheels/"
    cp "$here/$name/requirements.txt" "$ctx/wheels/"
  fi
  "$docker" build -q --build-arg "$arg=$parent" -t "$tag" "$ctx" >/dev/null
  rm -rf "$ctx"
}

build python BASE "$base"
build influxdb BASE "$base"
for name in mongo smartwatts smartwatts24 hwpc-sensor-sim grafana; do build "$name" PYTHON "${tags[python]}"; done

# the real sensor: its tag hashes the recipe and the upstream tarballs it is built from
vendor="${HWPC_VENDOR:-$root/../shared/vendor}"
declare -A sensor_sources=([1.7.0]="hwpc-sensor-1.7.0.tar.gz" [1.3.0]="hwpc-sensor-1.3.0.tar.gz libpfm4-smartwatts.tar.gz")
pinned="$(sed -n '/^  sensor:/,/^  [a-z]/s/^    tag: .\([0-9.]*\).*/\1/p' "$root/energy/defaults.yaml")"
for release in ${HWPC_SENSOR_RELEASES:-$pinned}; do
  files="${sensor_sources[$release]:-}"
  [ -n "$files" ] || { echo "build: hwpc-sensor $release: no recipe (known: ${!sensor_sources[*]})"; exit 1; }
  missing=""; for f in $files; do [ -f "$vendor/$f" ] || missing="$missing $f"; done
  if [ -n "$missing" ]; then
    echo "build: hwpc-sensor-$release SKIPPED: upstream sources absent ($vendor:$missing); the tests of the real sensor will be skipped"
    continue
  fi
  sums="$(cd "$vendor" && sha256sum $files)"
  tag="energy-test/hwpc-sensor-$release:$( (cd "$here/hwpc-sensor" && cat Dockerfile.$release perfshim.c pfmcheck.c; echo "$sums $base") | sha256sum | cut -c1-12)"
  tags[hwpc-sensor-$release]=$tag
  if exists "$tag"; then echo "build: $tag (cached)"; continue; fi
  echo "build: $tag (from $files)"
  ctx="$(mktemp -d)"
  cp "$here/hwpc-sensor/Dockerfile.$release" "$here/hwpc-sensor/perfshim.c" "$here/hwpc-sensor/pfmcheck.c" "$ctx/"
  for f in $files; do cp "$vendor/$f" "$ctx/"; done
  "$docker" build -q -f "$ctx/Dockerfile.$release" --build-arg "BASE=$base" -t "$tag" "$ctx" >/dev/null
  rm -rf "$ctx"
done

{
  echo "{"
  first=1
  for name in "${!tags[@]}"; do
    [ $first = 1 ] || echo ","
    first=0
    printf '  "%s": "%s"' "$name" "${tags[$name]}"
  done
  echo; echo "}"
} >"$cache/images.json"
echo "build: images in $cache/images.json"
