# shellcheck shell=sh
# Shared by the scripts here (sourced, not run). stagingbot runs each script without a
# shell of its own, with the staging's data in STAGING_* variables: they are data, so
# every use below is double-quoted.
set -eu

ns=$STAGING_NAMESPACE
# shellcheck disable=SC2034 # read by the scripts that source this file
release=$STAGING_NAME

# Exit 75 (EX_TEMPFAIL) tells stagingbot "try again later": an unreachable cluster should
# not fail the staging for good.
if ! kubectl get --raw /readyz --request-timeout=10s >/dev/null 2>&1; then
  echo "the cluster is not reachable (kubectl get --raw /readyz failed)" >&2
  exit 75
fi

# Every Deployment and StatefulSet of the staging, as kind/name.
workloads() {
  kubectl get deployments,statefulsets --namespace "$ns" --output name
}
