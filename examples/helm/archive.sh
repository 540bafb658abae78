#!/bin/sh
# archive: scale every workload to zero, remembering its replica count in an annotation.
# Volumes, Secrets and the release stay. Archiving twice keeps the first counts.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

for workload in $(workloads); do
  replicas=$(kubectl get "$workload" --namespace "$ns" --output 'jsonpath={.spec.replicas}')
  if [ "$replicas" = 0 ]; then
    continue
  fi
  kubectl annotate "$workload" --namespace "$ns" --overwrite "stagingbot.dev/replicas=$replicas"
  kubectl scale "$workload" --namespace "$ns" --replicas=0
done
