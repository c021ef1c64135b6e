#!/usr/bin/env bash
# Start a private single-node SLURM cluster with accounting, for tests:
#   .ci/slurm-up.sh DIR        prints `export SLURM_CONF=...` lines; source DIR/env to use it
#   .ci/slurm-down.sh DIR      stops every daemon this script started
# Everything (configs, munge key, MariaDB data, logs, pids) lives in DIR, on free TCP ports, so it
# touches no system-wide SLURM/MariaDB setup. The node advertises GPUs from a count-only gres.conf
# (no devices) so GPU requests from workflow/profiles/slurm are scheduled as written.
# Exit codes: 0 up; 77 the packages cannot be installed or the daemons need root (callers skip);
# anything else: a real failure (see DIR/log).
set -euo pipefail

DIR=$(realpath -m "${1:?usage: slurm-up.sh DIR}")
mkdir -p "$DIR"/{log,state,spool,munge,mysql}
chmod 700 "$DIR/munge"
: > "$DIR/pids"

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "slurm-up: needs root or passwordless sudo to run slurmd" >&2
  exit 77
fi

PACKAGES="munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
need_install=0
for cmd in munged mungekey slurmctld slurmd slurmdbd sbatch sacct sacctmgr mariadbd mariadb-install-db; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need_install=1
done
if [ "$need_install" -eq 1 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "slurm-up: no apt-get to install $PACKAGES" >&2
    exit 77
  fi
  echo "slurm-up: installing $PACKAGES" >&2
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends $PACKAGES; } >"$DIR/log/apt.log" 2>&1; then
    echo "slurm-up: apt-get install failed (see $DIR/log/apt.log)" >&2
    tail -5 "$DIR/log/apt.log" >&2 || true
    exit 77
  fi
fi
export PATH="$PATH:/usr/sbin:/sbin"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port); SLURMD_PORT=$(free_port); DBD_PORT=$(free_port); DB_PORT=$(free_port)
HOST=$(hostname -s)
USER_NAME=$(id -un)
RUN_AS=$($SUDO id -un)
CLUSTER=asledtest
ACCOUNT=asled

# started DAEMON-NAME PID: record a daemon for slurm-down.sh
started() { echo "$1 $2" >> "$DIR/pids"; }
# a failed start-up stops whatever it had started
trap 'rc=$?; if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then "$(dirname "$0")/slurm-down.sh" "$DIR" || true; fi' EXIT

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...  (each try is cut off after 5 s)
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  while [ "$SECONDS" -lt "$deadline" ]; do
    if timeout 5 "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "slurm-up: $what did not come up within $1 s; logs in $DIR/log" >&2
  tail -n 20 "$DIR"/log/*.log >&2 || true
  return 1
}

# --- munge: the authentication every SLURM daemon and client uses
$SUDO mungekey --create --keyfile "$DIR/munge/munge.key" --force
$SUDO chmod 600 "$DIR/munge/munge.key"
$SUDO munged --key-file "$DIR/munge/munge.key" --socket "$DIR/munge/munge.sock" \
  --pid-file "$DIR/munge/munged.pid" --log-file "$DIR/log/munged.log" \
  --seed-file "$DIR/munge/munged.seed" --force
wait_for 10 munged test -s "$DIR/munge/munged.pid"
started munged "$(cat "$DIR/munge/munged.pid")"

# --- MariaDB: the accounting database behind slurmdbd (TCP on 127.0.0.1 only)
$SUDO mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user="$RUN_AS" \
  --auth-root-authentication-method=normal --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1
$SUDO mariadbd --no-defaults --datadir="$DIR/mysql" --user="$RUN_AS" --port="$DB_PORT" \
  --bind-address=127.0.0.1 --socket="$DIR/mysql.sock" --pid-file="$DIR/mysql.pid" \
  --log-error="$DIR/log/mariadb.log" --skip-name-resolve &
started mariadbd $!
wait_for 60 mariadbd test -S "$DIR/mysql.sock"

cat > "$DIR/slurm.conf" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.sock
CredType=cred/munge
SlurmUser=$RUN_AS
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageTRES=gres/gpu
# keep Snakemake's per-job comment (rule and wildcards) in sacct
AccountingStoreFlags=job_comment
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# with slurmdbd this "password" is the munge socket clients use to reach it
AccountingStoragePass=$DIR/munge/munge.sock
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
MinJobAge=300
# the node claims more CPUs, memory and GPUs than this machine has, so the profile's requests fit
SlurmdParameters=config_overrides
NodeName=$HOST CPUs=32 RealMemory=256000 Gres=gpu:4 State=UNKNOWN
PartitionName=$CLUSTER Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
# four stand-in device files: slurmd counts GPUs by the files gres.conf names
mkdir -p "$DIR/dev" && touch "$DIR"/dev/gpu{0,1,2,3}
echo "NodeName=$HOST Name=gpu File=$DIR/dev/gpu[0-3]" > "$DIR/gres.conf"
cat > "$DIR/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.sock
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=$RUN_AS
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=root
StorageLoc=slurm_acct_db
CONF
chmod 600 "$DIR/slurmdbd.conf"
export SLURM_CONF="$DIR/slurm.conf"

# --- slurmdbd (reads slurmdbd.conf beside $SLURM_CONF), then the cluster, account and user
$SUDO env SLURM_CONF="$SLURM_CONF" slurmdbd -D >"$DIR/log/slurmdbd.out" 2>&1 &
started slurmdbd $!
wait_for 60 slurmdbd sacctmgr -n list cluster
sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" >/dev/null
sacctmgr -i add user "$USER_NAME" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
[ "$RUN_AS" = "$USER_NAME" ] || sacctmgr -i add user "$RUN_AS" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null

# --- controller and the one compute node
$SUDO env SLURM_CONF="$SLURM_CONF" slurmctld -D -i >"$DIR/log/slurmctld.out" 2>&1 &
started slurmctld $!
wait_for 30 slurmctld scontrol ping
$SUDO env SLURM_CONF="$SLURM_CONF" slurmd -D -N "$HOST" >"$DIR/log/slurmd.out" 2>&1 &
started slurmd $!
wait_for 60 "slurmd (node idle)" bash -c 'sinfo -h -N -o %t | grep -qx idle' 

# Inside a job the Snakemake jobstep plugin clears every SLURM_* variable (SLURM_CONF included)
# before its nested `srun`, which then looks for /etc/slurm/slurm.conf. A real cluster keeps its
# config there; this private one is found through an `srun` shim first on PATH instead.
mkdir -p "$DIR/bin"
printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$DIR/slurm.conf" "$(command -v srun)" > "$DIR/bin/srun"
chmod +x "$DIR/bin/srun"

cat > "$DIR/env" <<ENV
export SLURM_CONF=$DIR/slurm.conf
export ASLED_SLURM_PARTITION=$CLUSTER
export ASLED_SLURM_ACCOUNT=$ACCOUNT
export PATH="$DIR/bin:\$PATH:/usr/sbin:/sbin"
ENV
cat "$DIR/env"
