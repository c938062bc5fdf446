#!/usr/bin/env bash
# `make loadtest`: a headless run, distributed (one master, LOADTEST_WORKERS workers on this
# machine), with Locust's CSV and HTML report under var/reports/; UI=1 opens the web UI instead.
# Across machines: the master with `--master`, each worker with `--worker --master-host=<master>`.
# Arguments are passed on to the master (`make capacity` adds its own); REPORT names the report.
set -euo pipefail
cd "$(dirname "$0")/.."
locust=.venv/bin/locust
host=${LOADTEST_HOST:-http://127.0.0.1:8080}
workers=${LOADTEST_WORKERS:-2}
export LOADTEST_ADMIN_PASSWORD=${LOADTEST_ADMIN_PASSWORD:-${ADMIN_PASSWORD:-}}
if [ -z "$LOADTEST_ADMIN_PASSWORD" ]; then
  echo "set ADMIN_PASSWORD (make seed's admin) or LOADTEST_ADMIN_EMAIL/LOADTEST_ADMIN_PASSWORD:" \
       "the load test makes its catalog through the API as an admin" >&2
  exit 2
fi
if [ -n "${UI:-}" ]; then
  exec "$locust" -f loadtests/locustfile.py --host "$host"
fi
mkdir -p var/reports
report=${REPORT:-var/reports/loadtest-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$(dirname "$report")"
"$locust" -f loadtests/locustfile.py --host "$host" --headless --master \
  --expect-workers "$workers" --csv "$report" --html "$report.html" \
  --load-shape "${LOAD_SHAPE:-step}" --step-users "${STEP_USERS:-10}" \
  --step-seconds "${STEP_SECONDS:-10}" --max-users "${MAX_USERS:-40}" \
  --shape-seconds "${SHAPE_SECONDS:-40}" --only-summary "$@" &
master=$!
pids=()
for _ in $(seq "$workers"); do
  "$locust" -f loadtests/locustfile.py --worker --host "$host" >/dev/null 2>&1 &
  pids+=($!)
done
status=0
wait "$master" || status=$?
wait "${pids[@]}" 2>/dev/null || true
echo "report: $report.html (CSV: ${report}_stats.csv)"
exit "$status"
