#!/bin/sh
# Install the Debian packages mapservice needs, only those that are missing.
#   tools/system-deps.sh run    -> what `make run` needs (Python venv, SpatiaLite)
#   tools/system-deps.sh test   -> plus PostgreSQL + PostGIS, Chromium, GDAL's ogr2ogr
set -eu
packages="python3 python3-venv libsqlite3-mod-spatialite"
if [ "${1:-run}" = test ]; then
    packages="$packages postgresql postgresql-15-postgis-3 postgresql-client chromium libatomic1 gdal-bin"
fi
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages:$missing -- run as root or install them: apt-get install$missing" >&2
    exit 1
fi
echo "installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
