#!/usr/bin/env bash
# The distributed suite (tests/distributed) starts its own PostgreSQL and Redis server processes on free
# ports in temporary directories; it needs Debian's server binaries, installed here when missing (like
# Chromium for the UI tests). No system service is started or configured.
set -euo pipefail
missing=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [[ -z "$pg_bin" || ! -x "$pg_bin/initdb" ]] && ! command -v initdb >/dev/null; then missing+=(postgresql); fi
if ! command -v redis-server >/dev/null; then missing+=(redis-server); fi
if [[ ${#missing[@]} -eq 0 ]]; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "ensure_services: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "ensure_services: installing Debian's ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Install the binaries only: the packages' own services are not wanted (the tests run their own servers).
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
