#!/usr/bin/env bash
# wanjax on a Cloud TPU VM pod slice: create it, install wanjax on every worker, train, delete.
#
#   scripts/tpu_pod.sh create
#   scripts/tpu_pod.sh install
#   BUCKET=my-bucket scripts/tpu_pod.sh train configs/tiny.yaml train.steps=1000   # key=value as for `wanjax train`
#   scripts/tpu_pod.sh delete
#
# Settings (environment, defaults in brackets):
#   TPU_NAME [wanjax]  ZONE [us-east5-a]  ACCELERATOR [v5p-32]  RUNTIME [v2-alpha-tpuv5; v6e: v2-alpha-tpuv6e]
#   PROJECT [gcloud's default]  SPOT=1 for a spot slice
#   BUCKET (train): checkpoints/logs go to gs://BUCKET/runs/RUN [RUN=TPU_NAME], data to gs://BUCKET/data
#   WANJAX: what workers pip install [a wheel built from this checkout and copied over], e.g.
#           "wanjax @ git+https://github.com/ORG/wanjax@main"
#   DRY_RUN=1 prints each command (shell-quoted, one a line) instead of running it.
set -euo pipefail

TPU_NAME=${TPU_NAME:-wanjax}
ZONE=${ZONE:-us-east5-a}
ACCELERATOR=${ACCELERATOR:-v5p-32}
RUNTIME=${RUNTIME:-v2-alpha-tpuv5}
PROJECT=${PROJECT:-}
SPOT=${SPOT:-0}
RUN=${RUN:-$TPU_NAME}
WANJAX=${WANJAX:-}
DRY_RUN=${DRY_RUN:-0}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# TPU VM images ship Python 3.10 and wanjax needs >= 3.11: uv brings its own Python into this venv (on each worker).
VENV='~/wanjax-venv'  # ~ expands on the worker

where=(--zone="$ZONE")
if [[ -n $PROJECT ]]; then where+=(--project="$PROJECT"); fi

run() {
  if [[ $DRY_RUN == 1 ]]; then
    local line
    printf -v line '%q ' "$@"
    echo "${line% }"
  else
    "$@"
  fi
}

on_all_workers() {
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${where[@]}" --worker=all --command="$1"
}

cmd_create() {
  local flags=(--accelerator-type="$ACCELERATOR" --version="$RUNTIME")
  if [[ $SPOT == 1 ]]; then flags+=(--spot); fi
  run gcloud compute tpus tpu-vm create "$TPU_NAME" "${where[@]}" "${flags[@]}"
}

cmd_install() {
  local spec=$WANJAX
  if [[ -z $spec ]]; then
    local version wheel
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml")
    wheel="wanjax-$version-py3-none-any.whl"
    run python3 -m pip wheel --no-deps --wheel-dir "$REPO/dist" "$REPO"
    run gcloud compute tpus tpu-vm scp "$REPO/dist/$wheel" "$TPU_NAME:$wheel" "${where[@]}" --worker=all
    spec="./$wheel"
  fi
  local uv='~/.local/bin/uv'  # where uv's installer puts it; ~ expands on the worker
  # gcsfs: Orbax reaches gs:// through etils.epath, which needs gcsfs when TensorFlow is absent (as here).
  local packages
  printf -v packages '%q ' 'jax[tpu]' gcsfs "$spec"
  on_all_workers "curl -LsSf https://astral.sh/uv/install.sh | sh && $uv venv --python 3.12 $VENV && \
$uv pip install --python $VENV ${packages% }"
}

cmd_train() {
  local config=${1:?usage: tpu_pod.sh train CONFIG [key=value ...]}
  shift
  : "${BUCKET:?set BUCKET to a GCS bucket the TPU service account can write (without gs://)}"
  local args
  run gcloud compute tpus tpu-vm scp "$config" "$TPU_NAME:$(basename "$config")" "${where[@]}" --worker=all
  printf -v args '%q ' "$(basename "$config")" "train.workdir=gs://$BUCKET/runs/$RUN" \
    "data.data_dir=gs://$BUCKET/data" "$@"
  on_all_workers "$VENV/bin/wanjax train ${args% }"
}

cmd_delete() {
  run gcloud compute tpus tpu-vm delete "$TPU_NAME" "${where[@]}" --quiet
}

case ${1:-} in
  create | install | train | delete)
    if [[ $DRY_RUN != 1 ]] && ! command -v gcloud >/dev/null; then
      echo "tpu_pod.sh: gcloud not found: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)" >&2
      exit 1
    fi
    cmd=$1
    shift
    "cmd_$cmd" "$@"
    ;;
  *)
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
