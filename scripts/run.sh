#!/bin/sh
# Starts the bundled origin (embedded store, demo content) and an edge in
# front of it on loopback, prints their URLs, and stops both on Ctrl-C.
# Usage: scripts/run.sh BIN SEED. Addresses can be changed with ORIGIN_ADDR,
# EDGE_ADDR and ADMIN_ADDR.
set -eu
bin=${1:-bin/lakka}
seed=${2:-500}
origin=${ORIGIN_ADDR:-127.0.0.1:8000}
edge=${EDGE_ADDR:-127.0.0.1:8080}
admin=${ADMIN_ADDR:-127.0.0.1:8081}
: "${LAKKA_PURGE_TOKEN:=demo-purge-token}"
: "${LAKKA_ORIGIN_TOKEN:=demo-origin-token}"
: "${LAKKA_ADMIN_TOKEN:=demo-admin-token}"
export LAKKA_PURGE_TOKEN LAKKA_ORIGIN_TOKEN LAKKA_ADMIN_TOKEN

pids=""
cleanup() {
	trap - INT TERM EXIT
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

if ! command -v curl >/dev/null 2>&1; then
	echo "run: needs curl (to check the ports and wait for the servers)" >&2
	exit 1
fi

# Refuse to start in front of somebody else's server on a busy port:
# anything but "could not connect" (curl's exit status 7) means something
# listens there, whether it answers HTTP or not.
for a in "$origin" "$edge" "$admin"; do
	rc=0
	curl -s -o /dev/null --max-time 1 "http://$a/" 2>/dev/null || rc=$?
	if [ "$rc" != 7 ]; then
		echo "run: $a is already in use; choose other addresses, e.g." >&2
		echo "  ORIGIN_ADDR=127.0.0.1:18000 EDGE_ADDR=127.0.0.1:18080 ADMIN_ADDR=127.0.0.1:18081 make run" >&2
		exit 1
	fi
done

# wait_up ADDR PATH NAME PID: until the process answers, or exits.
wait_up() {
	i=0
	until curl -fsS -o /dev/null --max-time 1 "http://$1$2" 2>/dev/null; do
		if ! kill -0 "$4" 2>/dev/null; then echo "run: $3 exited; see its message above" >&2; exit 1; fi
		i=$((i + 1))
		if [ "$i" -gt 100 ]; then echo "run: $3 did not come up on $1" >&2; exit 1; fi
		sleep 0.1
	done
}

"$bin" origin --listen "$origin" --seed "$seed" --edge-admin "$admin" &
pids="$pids $!"
wait_up "$origin" /healthz origin $!
"$bin" edge --listen "$edge" --admin "$admin" --backend "$origin" &
pids="$pids $!"
wait_up "$admin" /healthz edge $!

cat <<MSG

  origin:        http://$origin/
  edge:          http://$edge/          (try: curl -si http://$edge/ | head)
  edge metrics:  curl -s -H 'Authorization: Bearer $LAKKA_ADMIN_TOKEN' http://$admin/metrics
  edge stats:    LAKKA_ADMIN_TOKEN=$LAKKA_ADMIN_TOKEN bin/lakka stats --admin $admin
  purge:         LAKKA_PURGE_TOKEN=$LAKKA_PURGE_TOKEN bin/lakka purge --admin $admin --tag front --soft
  origin API:    curl -s -H 'Authorization: Bearer $LAKKA_ORIGIN_TOKEN' http://$origin/api/articles/1

  Ctrl-C stops both (the edge drains for 5 s first, as it would behind a
  load balancer: edge.drain_delay).
MSG
wait
