#!/bin/sh
# create and update: install or upgrade the chart as the staging's release, in its own
# namespace. Returns once applied; check.sh tells when it is up.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

chart=${HELM_CHART:-./chart}
values=$(mktemp -d)
trap 'rm -rf "$values"' EXIT

# Overrides (`/staging set KEY=VALUE`) become the chart's `env` map. Each value goes through
# a file (--set-file): `--set` would split a value on commas and read backslashes.
set --
for key in $STAGING_OVERRIDE_KEYS; do
  case $key in
    *[!A-Z0-9_]*) echo "unexpected override key: $key" >&2; exit 1 ;;
  esac
  printf '%s' "$(printenv "$STAGING_OVERRIDE_PREFIX$key")" > "$values/$key"
  set -- "$@" --set-file "env.$key=$values/$key"
done
printf '%s' "$STAGING_BRANCH" > "$values/branch"

helm upgrade --install "$release" "$chart" \
  --namespace "$ns" --create-namespace \
  --set-string image.tag="$STAGING_SHA" \
  --set-string ingress.host="$STAGING_HOST" \
  --set-file staging.branch="$values/branch" \
  --set-string staging.pr="$STAGING_PR" \
  --wait=false \
  "$@"
kubectl label namespace "$ns" --overwrite app.kubernetes.io/managed-by=stagingbot >/dev/null
