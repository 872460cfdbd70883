#!/usr/bin/env bash
# The system packages the test suite needs, installed with apt only where they are missing.
# `make test` runs this first (so does `.ci/run`, through `make test`); a machine that has them
# installs nothing and needs no network.
#   - postgresql: the server binaries (initdb, pg_ctl); deploy/test_postgres.py starts its own server;
#   - chromium: headless, renders the HTML report in report/test_reporting_e2e.py.
# `--check` only reports what is missing (exit 1 if anything is).
set -euo pipefail

have_postgres() {
    { command -v initdb && command -v pg_ctl; } >/dev/null 2>&1 \
        || compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null
}
have_chromium() {
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -x /usr/bin/chromium ]
}

missing=()
have_postgres || missing+=(postgresql)
have_chromium || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "missing system packages: ${missing[*]}"
    exit 1
fi

echo "installing the system packages the tests need: ${missing[*]} (apt-get, once per machine)"
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "cannot install ${missing[*]}: not root and no password-less sudo." >&2
    echo "Install them once by hand: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "cannot install ${missing[*]}: no apt-get on this machine; install them with its package manager" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q "${missing[@]}"

# what the packages must provide, checked rather than assumed
have_postgres || { echo "postgresql installed but initdb / pg_ctl not found" >&2; exit 1; }
have_chromium || { echo "chromium installed but not found on PATH" >&2; exit 1; }
echo "installed: ${missing[*]}"
