#!/bin/sh
# info: extra links for the staging, one `name,url` line each (http and https only).
# LOGS_URL (passed with command.pass_env) is a log viewer's address ending in a query for
# the namespace, e.g. "https://grafana.example.com/explore?namespace=".
set -eu
echo "app,$STAGING_URL"
if [ -n "${LOGS_URL:-}" ]; then
  echo "logs,$LOGS_URL$STAGING_NAMESPACE"
fi
