#!/bin/sh
# check: exit 0 when every Deployment and StatefulSet has rolled out, else 1 with one line
# on stdout saying what is not ready. Never waits: stagingbot asks again every
# kubernetes.rollout_poll until kubernetes.rollout_deadline.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

found=$(workloads)
if [ -z "$found" ]; then
  echo "no Deployment or StatefulSet in $ns yet"
  exit 1
fi
for workload in $found; do
  if ! status=$(kubectl rollout status "$workload" --namespace "$ns" --timeout=1s 2>&1); then
    echo "$workload: $(printf '%s\n' "$status" | tail -n 1)"
    exit 1
  fi
done
