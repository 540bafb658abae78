#!/bin/sh
# restore: scale every workload archive.sh stopped back to its remembered replica count.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

for workload in $(workloads); do
  replicas=$(kubectl get "$workload" --namespace "$ns" \
    --output 'jsonpath={.metadata.annotations.stagingbot\.dev/replicas}')
  if [ -z "$replicas" ]; then
    continue
  fi
  kubectl scale "$workload" --namespace "$ns" --replicas="$replicas"
  kubectl annotate "$workload" --namespace "$ns" stagingbot.dev/replicas-
done
