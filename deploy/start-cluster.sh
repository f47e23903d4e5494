#!/usr/bin/env bash
# Start a standalone sluicegate cluster: the driver service here, a worker on every
# host listed in the hosts file (one per line, # comments), over ssh -- like Spark's
# sbin/start-all.sh. Hosts that name this machine (localhost, 127.x, ::1) are started
# directly, without ssh. If anything fails to start, everything this run started is
# stopped again and the script exits non-zero. Stop a running cluster with stop-cluster.sh.
#
# Usage: deploy/start-cluster.sh [HOSTS_FILE]      (default: $SLUICEGATE_HOSTS_FILE,
#                                                    else deploy/workers)
# Settings (environment):
#   SLUICEGATE_SECRET_FILE   the cluster's shared secret (chmod 600), at the same path on
#                            every host. Needed as soon as a worker is not this machine;
#                            without it everything stays on loopback.
#   SLUICEGATE_DRIVER_HOST   the address to listen on and that workers use
#                            (default: this host's name with a secret, else 127.0.0.1)
#   SLUICEGATE_DRIVER_PORT   default 7077
#   SLUICEGATE_DRIVER_OPTS   extra `sluicegate driver` options
#   SLUICEGATE_WORKER_OPTS   extra `sluicegate worker` options (e.g. "--cores 8")
#   SLUICEGATE_BIN           the sluicegate command, the same path on every host
#                            (default: the one on this PATH)
#   SLUICEGATE_RUN_DIR       pid and log files, on every host (default /tmp/sluicegate-$USER)
#   SSH                      the ssh command (default: ssh); SSH_OPTS its options
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
hosts_file="${1:-${SLUICEGATE_HOSTS_FILE:-$here/workers}}"
bin="${SLUICEGATE_BIN:-$(command -v sluicegate || echo sluicegate)}"
run_dir="${SLUICEGATE_RUN_DIR:-/tmp/sluicegate-${USER:-$(id -un)}}"
ssh_cmd="${SSH:-ssh}"
ssh_opts="${SSH_OPTS:--o StrictHostKeyChecking=accept-new -o ConnectTimeout=10}"
port="${SLUICEGATE_DRIVER_PORT:-7077}"
secret_args=()
if [[ -n "${SLUICEGATE_SECRET_FILE:-}" ]]; then
    secret_args=(--secret-file "$SLUICEGATE_SECRET_FILE")
    driver_host="${SLUICEGATE_DRIVER_HOST:-$(hostname -f 2>/dev/null || hostname)}"
else
    driver_host="${SLUICEGATE_DRIVER_HOST:-127.0.0.1}"
fi

if [[ ! -r "$hosts_file" ]]; then
    echo "start-cluster: no hosts file $hosts_file (one worker host per line)" >&2
    exit 2
fi
mkdir -p "$run_dir"
chmod 700 "$run_dir"

# -- the driver service, here --------------------------------------------------------
pid_file="$run_dir/driver.pid"
if [[ -s "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "start-cluster: a driver already runs here (pid $(cat "$pid_file")); stop-cluster.sh first" >&2
    exit 1
fi
# shellcheck disable=SC2086  # the options are words on purpose
nohup "$bin" driver --host "$driver_host" --port "$port" "${secret_args[@]}" \
    --log-file "$run_dir/driver.log" ${SLUICEGATE_DRIVER_OPTS:-} \
    >>"$run_dir/driver.out" 2>&1 </dev/null &
echo $! >"$pid_file"
echo "driver: pid $! on $driver_host:$port (log $run_dir/driver.log)"

for _ in $(seq 1 60); do
    if "$bin" status --driver "$driver_host:$port" "${secret_args[@]}" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        echo "start-cluster: the driver exited:" >&2
        cat "$run_dir/driver.out" >&2
        exit 1
    fi
    sleep 0.5
done
if ! "$bin" status --driver "$driver_host:$port" "${secret_args[@]}" >/dev/null 2>&1; then
    echo "start-cluster: the driver did not answer on $driver_host:$port within 30 s" \
         "(see $run_dir/driver.out); stopping it" >&2
    "$here/stop-cluster.sh" /dev/null >&2 || true
    exit 1
fi

# -- a worker on each listed host ---------------------------------------------------------
# On any failure from here on, stop what this run started: the workers that did start and
# the driver, so that a failed start leaves nothing behind.
started_hosts="$run_dir/workers.starting"
: >"$started_hosts"
undo() {
    echo "start-cluster: stopping what was started" >&2
    "$here/stop-cluster.sh" "$started_hosts" >&2 || true
    rm -f "$started_hosts"
}
# Runs a shell command on a host: directly for this machine, over ssh for the others.
on_host() {
    case "$1" in
        localhost|127.*|::1) bash -c "$2" </dev/null ;;
        # shellcheck disable=SC2086
        *) $ssh_cmd $ssh_opts "$1" "$2" </dev/null ;;
    esac
}
quote() { printf '%q ' "$@"; }
index=0
status=0
starts=()
while read -r line || [[ -n "$line" ]]; do
    host="${line%%#*}"
    host="$(echo "$host" | xargs)"
    [[ -z "$host" ]] && continue
    index=$((index + 1))
    echo "$host" >>"$started_hosts"   # stop-cluster.sh numbers workers by line, as here
    case "$host" in
        localhost|127.*|::1) worker_host=127.0.0.1 ;;
        *) worker_host="$host" ;;
    esac
    name="worker-$index"
    # (`;` before `nohup ... &`: only the worker goes to the background, so $! is its pid)
    command="mkdir -p $(quote "$run_dir") && chmod 700 $(quote "$run_dir") || exit 1; "
    if [[ -n "${SLUICEGATE_HOME:-}" ]]; then
        command+="SLUICEGATE_HOME=$(quote "$SLUICEGATE_HOME") "
    fi
    # shellcheck disable=SC2086
    command+="nohup $(quote "$bin" worker --driver "$driver_host:$port" --host "$worker_host" \
        --worker-id "$host-$index" "${secret_args[@]}" --log-file "$run_dir/$name.log" \
        ${SLUICEGATE_WORKER_OPTS:-})"
    command+=">>$(quote "$run_dir/$name.out") 2>&1 </dev/null & echo \$! >$(quote "$run_dir/$name.pid")"
    # All hosts at once, as Spark's scripts do.
    (if on_host "$host" "$command"; then
        echo "$name: started on $host"
    else
        echo "start-cluster: could not start a worker on $host" >&2
        exit 1
    fi) &
    starts+=("$!")
done <"$hosts_file"
for start in "${starts[@]}"; do
    wait "$start" || status=1
done

# A worker that was launched can still exit at once (a bad option, a port in use, the
# wrong secret): wait until every one of them has registered with the driver.
if [[ "$status" -eq 0 && "$index" -gt 0 ]]; then
    registered=0
    for _ in $(seq 1 "${SLUICEGATE_START_WAIT_STEPS:-120}"); do
        registered=$("$bin" status --json --driver "$driver_host:$port" "${secret_args[@]}" 2>/dev/null \
            | python3 -c 'import json, sys; print(sum(w["alive"] for w in json.load(sys.stdin)["workers"]))' \
            2>/dev/null || echo 0)
        [[ "$registered" -ge "$index" ]] && break
        sleep 0.5
    done
    if [[ "$registered" -lt "$index" ]]; then
        echo "start-cluster: only $registered of $index workers registered with the driver" \
             "(see $run_dir/worker-*.out)" >&2
        status=1
    fi
fi
if [[ "$status" -ne 0 ]]; then
    undo
    exit "$status"
fi
mv "$started_hosts" "$run_dir/workers.hosts"
echo "cluster: sluicegate status --driver $driver_host:$port${secret_args:+ --secret-file $SLUICEGATE_SECRET_FILE}"
