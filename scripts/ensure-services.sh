#!/usr/bin/env bash
# Starts the machine's PostgreSQL when it is installed but not running (the alert store's
# tests run against SQLite and PostgreSQL). Mosquitto and influxd need nothing here: the
# tests start private instances of both on free ports.
set -euo pipefail
pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 50); do pg_up && break; sleep 0.2; done
fi
pg_up || echo "warning: no PostgreSQL on 127.0.0.1:5432; PostgreSQL store tests will fail" >&2
