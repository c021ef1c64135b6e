#!/usr/bin/env bash
# Stop the cluster .ci/slurm-up.sh started in DIR: cancel its jobs, then stop each recorded daemon
# (newest first) and wait for it to exit. Exits non-zero if any recorded daemon is still alive.
set -uo pipefail
DIR=$(realpath -m "${1:?usage: slurm-down.sh DIR}")
[ -f "$DIR/pids" ] || exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
export PATH="$PATH:/usr/sbin:/sbin" SLURM_CONF="$DIR/slurm.conf"

if grep -q '^slurmctld ' "$DIR/pids"; then
  timeout 20 scancel --full --state=RUNNING,PENDING --user="$(id -un)" 2>/dev/null || true
  for _ in $(seq 1 40); do
    [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
    sleep 0.5
  done
fi

alive() { kill -0 "$1" 2>/dev/null || $SUDO kill -0 "$1" 2>/dev/null; }
left=0
tac "$DIR/pids" | while read -r name pid; do
  [ -n "$pid" ] || continue
  alive "$pid" || continue
  $SUDO kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 60); do alive "$pid" || break; sleep 0.5; done
  if alive "$pid"; then
    echo "slurm-down: $name ($pid) ignored SIGTERM; killing" >&2
    $SUDO kill -KILL "$pid" 2>/dev/null
    sleep 0.5
  fi
done
while read -r name pid; do
  if [ -n "$pid" ] && alive "$pid"; then echo "slurm-down: $name ($pid) is still running" >&2; left=1; fi
done < "$DIR/pids"
exit $left
