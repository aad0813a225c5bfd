#!/usr/bin/env bash
# The routing-log tests start a real PostgreSQL server on 127.0.0.1 (initdb/pg_ctl into a temp
# folder): install Debian's postgresql package when its binaries are missing. Needs root or sudo.
set -euo pipefail
if command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update && $SUDO apt-get install -y postgresql
