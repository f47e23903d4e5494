#!/usr/bin/env bash
# Stop what start-cluster.sh started: the workers (on the hosts it used: over ssh, or
# directly for this machine's localhost, 127.x and ::1) and then the driver service
# here. Each stops its own executors and jobs.
#
# Usage: deploy/stop-cluster.sh [HOSTS_FILE]   (default: the hosts start-cluster.sh used)
# Settings: SLUICEGATE_RUN_DIR, SSH, SSH_OPTS as for start-cluster.sh.
set -euo pipefail

run_dir="${SLUICEGATE_RUN_DIR:-/tmp/sluicegate-${USER:-$(id -un)}}"
hosts_file="${1:-$run_dir/workers.hosts}"
ssh_cmd="${SSH:-ssh}"
ssh_opts="${SSH_OPTS:--o StrictHostKeyChecking=accept-new -o ConnectTimeout=10}"

quote() { printf '%q ' "$@"; }
on_host() {
    case "$1" in
        localhost|127.*|::1) bash -c "$2" </dev/null ;;
        # shellcheck disable=SC2086
        *) $ssh_cmd $ssh_opts "$1" "$2" </dev/null ;;
    esac
}
# Ends the process in a pid file: SIGTERM, then SIGKILL after 30 s (an exited process
# that nobody has reaped yet counts as gone).
stop_pid_file='f="$1"; [ -s "$f" ] || exit 0; pid=$(cat "$f")
running() { kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" | cut -c1)" != Z ]; }
if running; then
    kill -TERM "$pid"
    for _ in $(seq 1 150); do running || break; sleep 0.2; done
    if running; then kill -KILL "$pid"; fi
fi
rm -f "$f"'

if [[ -r "$hosts_file" ]]; then
    index=0
    while read -r line || [[ -n "$line" ]]; do
        host="$(echo "${line%%#*}" | xargs)"
        [[ -z "$host" ]] && continue
        index=$((index + 1))
        command="sh -c $(quote "$stop_pid_file") stop $(quote "$run_dir/worker-$index.pid")"
        (if on_host "$host" "$command"; then
            echo "worker-$index: stopped on $host"
        else
            echo "stop-cluster: could not stop the worker on $host" >&2
        fi) &
    done <"$hosts_file"
    wait
else
    echo "stop-cluster: no hosts file $hosts_file; stopping only the driver" >&2
fi

sh -c "$stop_pid_file" stop "$run_dir/driver.pid"
echo "driver: stopped"
