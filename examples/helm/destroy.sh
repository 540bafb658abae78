#!/bin/sh
# destroy: uninstall the release and delete the namespace (volumes included), waiting until
# it is gone. Safe to run again: what is already gone is skipped.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if helm status "$release" --namespace "$ns" >/dev/null 2>&1; then
  helm uninstall "$release" --namespace "$ns" --wait
fi
kubectl delete namespace "$ns" --ignore-not-found --wait=true --timeout=5m
