#!/bin/sh
# make bench-hit: cache-hit throughput of the edge against a bare fasthttp
# server returning the same bytes from memory, side by side in one run,
# measured with wrk over loopback. The servers run on one core (CPU 0,
# GOMAXPROCS=1) and wrk on another (CPU 1) when the machine has two.
# Usage: scripts/bench-hit.sh BIN   (DURATION=5s CONNS=64 ROUNDS=5 to change)
set -eu
bin=${1:-bin/lakka}
duration=${DURATION:-5s}
conns=${CONNS:-64}
if ! command -v wrk >/dev/null 2>&1; then
	echo "bench-hit: installing wrk (Debian package)" >&2
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
	else
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
	fi
fi
go build -o bin/barefast ./cmd/barefast

server_cpu="" client_cpu=""
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	server_cpu="taskset -c 0"
	client_cpu="taskset -c 1"
fi

bare=127.0.0.1:19100
edge=127.0.0.1:19180
admin=127.0.0.1:19181
# A second edge with the access log on, as it is by default (written to
# /dev/null: the cost measured is making and writing the lines).
logged=127.0.0.1:19182
ladmin=127.0.0.1:19183
for a in "$bare" "$edge" "$admin" "$logged" "$ladmin"; do
	# Anything but "could not connect" (curl's 7) means something listens.
	rc=0
	curl -s -o /dev/null --max-time 1 "http://$a/" || rc=$?
	if [ "$rc" != 7 ]; then
		echo "bench-hit: $a is already in use (a server left from an earlier run?); stop it first" >&2
		exit 1
	fi
done
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

GOMAXPROCS=1 $server_cpu bin/barefast --listen "$bare" &
bare_pid=$!
pids="$pids $bare_pid"
cfg=$(mktemp)
cat >"$cfg" <<YAML
edge: {listen: "$edge", admin: "$admin", drain_delay: 0s}
backends: {servers: [{address: "$bare"}]}
log: {access: "off", level: "warn"}
YAML
GOMAXPROCS=1 $server_cpu "$bin" edge --config "$cfg" &
edge_pid=$!
pids="$pids $edge_pid"
lcfg=$(mktemp)
cat >"$lcfg" <<YAML
edge: {listen: "$logged", admin: "$ladmin", drain_delay: 0s}
backends: {servers: [{address: "$bare"}]}
log: {level: "warn"}
YAML
GOMAXPROCS=1 $server_cpu "$bin" edge --config "$lcfg" >/dev/null &
logged_pid=$!
pids="$pids $logged_pid"
for i in $(seq 1 100); do
	curl -fsS -o /dev/null --max-time 1 "http://$edge/2k" 2>/dev/null && curl -fsS -o /dev/null --max-time 1 "http://$logged/2k" 2>/dev/null &&
		curl -fsS -o /dev/null --max-time 1 "http://$bare/2k" 2>/dev/null && break
	sleep 0.1
done
for p in $pids; do
	if ! kill -0 "$p" 2>/dev/null; then
		echo "bench-hit: a server did not start (see above)" >&2
		exit 1
	fi
done
# Prime the caches (both encodings).
for e in "$edge" "$logged"; do
	for p in /2k /40k; do
		curl -fsS -o /dev/null "http://$e$p"
		curl -fsS -o /dev/null -H 'Accept-Encoding: gzip' "http://$e$p"
	done
done

# cputicks PID: the process's user and system CPU time so far, in clock
# ticks (/proc/PID/stat fields 14 and 15; the name in field 2 has no spaces).
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# run URL PID [HEADER]: one wrk run against URL, served by PID; prints the
# requests/s and the server's CPU microseconds per request.
run() {
	c0=$(cputicks "$2")
	if [ -n "${3:-}" ]; then
		out=$($client_cpu wrk -t1 -c"$conns" -d"$duration" -H "$3" "$1")
	else
		out=$($client_cpu wrk -t1 -c"$conns" -d"$duration" "$1")
	fi
	c1=$(cputicks "$2")
	echo "$out" | awk -v t="$((c1 - c0))" -v hz="$hz" '
		/requests in/ {n = $1}
		/Requests\/sec/ {r = $2}
		END {printf "%s %.3f\n", r, (n > 0 ? 1e6 * t / hz / n : 0)}'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Each case alternates bare and edge ROUNDS times (default 5), so that a
# noisy neighbour hits both sides alike. It prints the median rate of each,
# and the median of the rounds' own edge/bare ratios (each round's pair ran
# back to back, so a slow spell on the machine cancels out of its ratio):
# that is the figure the target is about.
#
# It also prints each server's CPU time per request (from /proc, median of
# the rounds) and their ratio: how much more CPU a hit costs the edge than
# the bare server, whatever else the machine was doing meanwhile.
#
# The edge runs twice: with the access log off, and with it on as it is
# by default. The last two columns are the logged edge's requests/s
# (median) and the median of the rounds' logged/unlogged ratios: what the
# access log costs.
rounds=${ROUNDS:-5}
printf '%-14s %11s %11s %13s %15s   %-36s %11s %9s\n' "case" "bare req/s" "edge req/s" "ratio of" "median of the" "CPU µs/request" "log on" "log on/"
printf '%-14s %11s %11s %13s %15s   %-36s %11s %9s\n' "" "(median)" "(median)" "the medians" "rounds' ratios" "bare, edge (bare/edge)" "req/s" "log off"
for p in /2k /40k; do
	for enc in gzip identity; do
		hdr=""
		[ "$enc" = gzip ] && hdr="Accept-Encoding: gzip"
		bs="" es="" rs="" bc="" ec="" ls="" lr=""
		for r in $(seq 1 "$rounds"); do
			# Alternate which goes first: the first run of a pair tends
			# to be faster on a shared machine.
			if [ $((r % 2)) = 1 ]; then
				bo=$(run "http://$bare$p" "$bare_pid" "$hdr")
				eo=$(run "http://$edge$p" "$edge_pid" "$hdr")
				lo=$(run "http://$logged$p" "$logged_pid" "$hdr")
			else
				lo=$(run "http://$logged$p" "$logged_pid" "$hdr")
				eo=$(run "http://$edge$p" "$edge_pid" "$hdr")
				bo=$(run "http://$bare$p" "$bare_pid" "$hdr")
			fi
			br=${bo% *} er=${eo% *} lgr=${lo% *}
			bs="$bs $br" es="$es $er" bc="$bc ${bo#* }" ec="$ec ${eo#* }" ls="$ls $lgr"
			rs="$rs $(echo "$er $br" | awk '{printf "%.4f", $1/$2}')"
			lr="$lr $(echo "$lgr $er" | awk '{printf "%.4f", $1/$2}')"
		done
		b=$(echo $bs | tr ' ' '\n' | median)
		e=$(echo $es | tr ' ' '\n' | median)
		ratio=$(echo $rs | tr ' ' '\n' | median)
		bcpu=$(echo $bc | tr ' ' '\n' | median)
		ecpu=$(echo $ec | tr ' ' '\n' | median)
		l=$(echo $ls | tr ' ' '\n' | median)
		lratio=$(echo $lr | tr ' ' '\n' | median)
		# Check the edge served hits, not misses.
		xc=$(curl -fsS -o /dev/null -D - ${hdr:+-H "$hdr"} "http://$edge$p" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache" {print $2}')
		printf '%-14s %11.0f %11.0f %12.1f%% %14.1f%%   %5.2f, %5.2f (%5.1f%%) X-Cache: %-5s %11.0f %8.1f%%\n' "${p#/} $enc" "$b" "$e" \
			"$(echo "$e $b" | awk '{printf "%.1f", 100*$1/$2}')" "$(echo "$ratio" | awk '{printf "%.1f", 100*$1}')" \
			"$bcpu" "$ecpu" "$(echo "$bcpu $ecpu" | awk '{printf "%.1f", ($2 > 0 ? 100*$1/$2 : 0)}')" "$xc" \
			"$l" "$(echo "$lratio" | awk '{printf "%.1f", 100*$1}')"
	done
done
rm -f "$cfg" "$lcfg"
