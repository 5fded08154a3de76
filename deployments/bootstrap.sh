#!/usr/bin/env bash
# Set up the weather pipeline on a Debian VM with Python 3.11+: the virtualenv, the Prefect
# server and a process worker under systemd, then the work pool, queues, rate limit, blocks,
# deployments and automations. Run it from the checkout, as root:
#
#   sudo deployments/bootstrap.sh                 # server and worker on this VM
#   sudo deployments/bootstrap.sh --worker-only   # one more worker for an existing server
#
# Every step converges, so re-running after a `git pull` or an edit of the env file is the way
# to apply changes. Services run as the owner of the checkout (override: WEATHER_USER=name).
set -euo pipefail

checkout=$(cd "$(dirname "$0")/.." && pwd)
env_file=/etc/weather-pipeline/weather.env
unit_dir=/etc/systemd/system
worker_only=false
case "${1:-}" in
    "") ;;
    --worker-only) worker_only=true ;;
    *) echo "usage: $0 [--worker-only]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: run as root: sudo $0 $*" >&2
    exit 2
fi
service_user=${WEATHER_USER:-$(stat -c %U "$checkout")}
service_group=$(id -gn "$service_user")
as_service_user() { runuser -u "$service_user" -- "$@"; }
say() { echo "bootstrap: $*"; }

# wait_healthy URL SECONDS WHAT UNIT: until URL/health answers 200, or fail naming WHAT and UNIT's journal.
wait_healthy() {
    "$checkout/.venv/bin/python" - "$@" <<'PY'
import sys, time, urllib.request
url, seconds, what, unit = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
deadline = time.monotonic() + seconds
while True:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=3) as response:
            if response.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"bootstrap: {what} did not answer within {seconds:g} s; see: journalctl -u {unit}")
    time.sleep(1)
PY
}

# Debian ships venv support separately; ./dev needs it to create .venv.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    say "installing python3-venv"
    apt-get update -qq && apt-get install -y -qq python3-venv
fi

# The virtualenv, from requirements.lock, exactly as the quickstart's ./dev installs it.
say "installing the virtualenv in $checkout/.venv"
as_service_user "$checkout/dev" pipeline --help >/dev/null

if [ ! -f "$env_file" ]; then
    install -d -m 0755 "$(dirname "$env_file")"
    cp "$checkout/deployments/weather.env.example" "$env_file"
    chown "root:$service_group" "$env_file"
    chmod 0640 "$env_file"
    say "created $env_file from deployments/weather.env.example"
fi
if grep -q '^[^#]*CHANGE_ME' "$env_file"; then
    echo "bootstrap: $env_file still has CHANGE_ME values: fill them in (or comment them out), then run $0 again" >&2
    exit 1
fi
set -a
# shellcheck source=/dev/null
. "$env_file"
set +a

install_unit() {
    sed -e "s|@USER@|$service_user|g" -e "s|@CHECKOUT@|$checkout|g" \
        "$checkout/deployments/systemd/$1" >"$unit_dir/$1"
    chmod 0644 "$unit_dir/$1"
}

# The server's `prefect` role and database, when they are missing in a Postgres on this VM. psql runs as
# the postgres superuser over the local socket; the password travels on stdin, never a command line.
ensure_server_database() {
    local url=${PREFECT_SERVER_DATABASE_CONNECTION_URL:-}
    if [ -z "$url" ]; then
        echo "bootstrap: set PREFECT_SERVER_DATABASE_CONNECTION_URL in $env_file (the server's Postgres database)" >&2
        exit 1
    fi
    if ! command -v psql >/dev/null || ! id postgres >/dev/null 2>&1; then
        say "no local Postgres here: the database in PREFECT_SERVER_DATABASE_CONNECTION_URL must exist"
        return
    fi
    "$checkout/.venv/bin/python" - <<'PY' | runuser -u postgres -- psql -q -X -v ON_ERROR_STOP=1 -d postgres
import os
from sqlalchemy.engine import make_url

url = make_url(os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"])
if url.host not in (None, "127.0.0.1", "localhost", "::1"):
    raise SystemExit(0)  # another machine's Postgres: its administrator creates the database


def literal(value):
    return "'" + str(value or "").replace("\\", "\\\\").replace("'", "\\'") + "'"


print(rf"\set role {literal(url.username)}")
print(rf"\set password {literal(url.password)}")
print(rf"\set database {literal(url.database)}")
print(r"""select format('create role %I login password %L', :'role', :'password')
  where not exists (select from pg_roles where rolname = :'role') \gexec
select format('create database %I owner %I', :'database', :'role')
  where not exists (select from pg_database where datname = :'database') \gexec""")
PY
}

if [ "$worker_only" = false ]; then
    ensure_server_database
    install_unit prefect-server.service
    systemctl daemon-reload
    systemctl enable --quiet prefect-server.service
    systemctl restart prefect-server.service
    say "waiting for the Prefect API at $PREFECT_API_URL"
    # The unit migrates the database before the server starts: allow a few minutes on a small VM.
    wait_healthy "$PREFECT_API_URL" 300 "the Prefect server" prefect-server
    # Work pool, queues daily (priority 1) and backfill (10), the open-meteo-api rate limit,
    # blocks from the PIPELINE_* values, `prefect --no-prompt deploy --all` and the automations
    # in deployments/automations/, each created or updated in place.
    (cd "$checkout" && as_service_user "$checkout/.venv/bin/pipeline" deploy)
fi

install_unit prefect-worker.service
systemctl daemon-reload
systemctl enable --quiet prefect-worker.service
# A restart picks up new code; a flow run in progress ends with it, so avoid the 06:00 UTC run.
systemctl restart prefect-worker.service
say "worker running on pool $PREFECT_DEFAULT_WORK_POOL_NAME (journalctl -u prefect-worker -f)"

# The freshness check that needs no worker and no Prefect server: alerts on a missed deadline even
# with every worker down. It reads the warehouse directly, so it belongs where one is configured,
# not on worker-only VMs (they read their connections from the server's blocks).
if [ "$worker_only" = false ] && [ -n "${PIPELINE_DATABASE_URL:-}" ]; then
    install_unit weather-freshness.service
    install_unit weather-freshness.timer
    systemctl daemon-reload
    systemctl enable --quiet --now weather-freshness.timer
    say "freshness check every 15 minutes (systemctl list-timers weather-freshness.timer)"
elif [ -f "$unit_dir/weather-freshness.timer" ]; then
    systemctl disable --quiet --now weather-freshness.timer
    rm -f "$unit_dir/weather-freshness.timer" "$unit_dir/weather-freshness.service"
    systemctl daemon-reload
    say "freshness timer removed: it runs only where PIPELINE_DATABASE_URL is set, not with --worker-only"
fi

# The BI dashboard beside the server, when the env file names it: Superset from its own lock, its
# metadata in Postgres, then the connection, datasets, charts and dashboard applied from the repo.
if [ "$worker_only" = false ] && [ -n "${PIPELINE_DASHBOARD_URL:-}" ]; then
    install -d -o "$service_user" -g "$service_group" /var/lib/weather-pipeline/superset
    (cd "$checkout" && SUPERSET_HOME=/var/lib/weather-pipeline/superset as_service_user "$checkout/.venv/bin/pipeline" dashboard setup)
    install_unit weather-dashboard.service
    systemctl daemon-reload
    systemctl enable --quiet weather-dashboard.service
    systemctl restart weather-dashboard.service
    wait_healthy "$PIPELINE_DASHBOARD_URL" 180 "the dashboard" weather-dashboard
    (cd "$checkout" && as_service_user "$checkout/.venv/bin/pipeline" dashboard deploy)
    say "dashboard: $PIPELINE_DASHBOARD_URL/superset/dashboard/weather/ (user ${PIPELINE_DASHBOARD_USER:-admin})"
fi

if [ "$worker_only" = false ]; then
    port=${PREFECT_SERVER_API_PORT:-4200}
    if [ -n "${PREFECT_UI_URL:-}" ]; then
        say "Prefect UI: $PREFECT_UI_URL"
    elif [ "${PREFECT_SERVER_API_HOST:-127.0.0.1}" = 127.0.0.1 ]; then
        say "Prefect UI: http://127.0.0.1:$port on this VM; from your machine: ssh -L $port:127.0.0.1:$port $(hostname -f)"
    else
        say "Prefect UI: http://$(hostname -f):$port"
    fi
fi
