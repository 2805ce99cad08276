#!/usr/bin/env bash
# Start a one-node Slurm on loopback for the `slurm` tests (idempotent; needs root and apt).
# Two partitions on the one node: `cpu` (default) and `gpu` with a declared GRES gpu:1 that
# points at /dev/null (enough to schedule --gpus=1 jobs; nothing uses it). A third partition,
# `cpuonly`, holds only `nogpu`, a node without GRES and without a slurmd (declared DOWN, its
# port closed): what sinfo shows of a real CPU-only partition, for the GPU preflight test (no
# job runs there). No accounting storage (no slurmdbd), so `sacct` fails and job status must
# come from `squeue`.
# Usage: sudo tests/slurm/setup.sh        (prints "slurm ready" when the node is idle)
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/slurm/setup.sh must run as root (it installs packages and starts daemons)" >&2
    exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
    || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge
fi

HOST="$(hostname -s)"
CPUS="$(nproc)"
# Leave the OS some memory; jobs are scheduled against what is declared here.
MEM_MB="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
CONF=/etc/slurm
mkdir -p "$CONF" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge

cat > "$CONF/slurm.conf.new" <<CONFIG
# Written by tests/slurm/setup.sh: a one-node test cluster on loopback, no accounting.
ClusterName=sgdprivacy
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
GresTypes=gpu
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=${HOST} Default=NO MaxTime=INFINITE State=UP
NodeName=nogpu NodeAddr=127.0.0.1 Port=9 CPUs=1 RealMemory=1000 State=DOWN Reason=never_started
PartitionName=cpuonly Nodes=nogpu Default=NO MaxTime=INFINITE State=UP
CONFIG
echo "NodeName=${HOST} Name=gpu File=/dev/null" > "$CONF/gres.conf.new"

changed=0
for f in slurm.conf gres.conf; do
    if ! cmp -s "$CONF/$f.new" "$CONF/$f"; then
        mv "$CONF/$f.new" "$CONF/$f"
        changed=1
    else
        rm "$CONF/$f.new"
    fi
done

if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.2; done
fi
if [ "$changed" = 1 ]; then
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        if running "$pidfile"; then
            kill "$(cat "$pidfile")"
            for _ in $(seq 50); do running "$pidfile" || break; sleep 0.2; done
        fi
    done
fi
running /run/slurmctld.pid || slurmctld
running /run/slurmd.pid || slurmd

for _ in $(seq 120); do
    state="$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1 || true)"
    case "$state" in
        idle|mixed|allocated) echo "slurm ready: node $HOST ($CPUS CPUs, ${MEM_MB} MB, gres gpu:1), partitions cpu and gpu (and cpuonly: no GPU, no running node)"; exit 0 ;;
        down*|drain*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
echo "Slurm did not come up; see /var/log/slurm/slurmctld.log and /var/log/slurm/slurmd.log" >&2
sinfo >&2 || true
exit 1
