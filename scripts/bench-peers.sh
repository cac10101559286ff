#!/bin/sh
# make bench-peers: the same breaking-news spike against a Lakka edge,
# Varnish and nginx, each in front of a fresh bundled origin on loopback,
# one after the other, then the comparison table.
#
# Installs varnish, varnish-modules, nginx (with ngx_cache_purge) and wrk
# from Debian's packages when they are missing. The peer under test runs on
# CPU 0, the origin and the bench on CPU 1, when the machine has two.
#
# Usage: scripts/bench-peers.sh BIN
# Environment (defaults): DURATION=40s RATE=300 SPIKE_AT=10s SPIKE_X=10
#   RAMP=10s EDIT_EVERY=3s SEED=500 CONNECTIONS=64 OUT=out/peers
#   PEERS="lakka varnish nginx"
set -eu
bin=${1:-bin/lakka}
duration=${DURATION:-40s}
rate=${RATE:-300}
spike_at=${SPIKE_AT:-10s}
spike_x=${SPIKE_X:-10}
ramp=${RAMP:-10s}
edit_every=${EDIT_EVERY:-3s}
seed=${SEED:-500}
connections=${CONNECTIONS:-64}
out=${OUT:-out/peers}
peers=${PEERS:-lakka varnish nginx}

: "${LAKKA_ORIGIN_TOKEN:=bench-origin-token}"
: "${LAKKA_PURGE_TOKEN:=bench-purge-token}"
export LAKKA_ORIGIN_TOKEN LAKKA_PURGE_TOKEN

origin=127.0.0.1:19300
admin=127.0.0.1:19301
listen=127.0.0.1:19380
xkey_vmod=$(find /usr/lib -name libvmod_xkey.so 2>/dev/null | head -n1 || true)
purge_mod=/usr/lib/nginx/modules/ngx_http_cache_purge_module.so

missing=""
command -v varnishd >/dev/null 2>&1 || missing="$missing varnish"
[ -n "$xkey_vmod" ] || missing="$missing varnish-modules"
command -v nginx >/dev/null 2>&1 || missing="$missing nginx"
[ -f "$purge_mod" ] || missing="$missing libnginx-mod-http-cache-purge"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
if [ -n "$missing" ]; then
	echo "bench-peers: installing$missing (Debian packages)" >&2
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

peer_cpu="" bench_cpu=""
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	peer_cpu="taskset -c 0"
	bench_cpu="taskset -c 1"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/lakka-peers.XXXXXX")
chmod 755 "$work"
pids=""
stop_all() {
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	pids=""
}
cleanup() {
	trap - INT TERM EXIT
	stop_all
	rm -rf "$work"
}
trap cleanup INT TERM EXIT

wait_up() { # URL NAME
	i=0
	until curl -fsS -o /dev/null "$1" 2>/dev/null; do
		i=$((i + 1))
		if [ "$i" -gt 200 ]; then echo "bench-peers: $2 did not come up at $1" >&2; exit 1; fi
		sleep 0.1
	done
}

mkdir -p "$out"
for peer in $peers; do
	echo "bench-peers: $peer" >&2
	dir="$work/$peer"
	mkdir -p "$dir"
	chmod 777 "$dir"
	# A fresh origin for each peer: the same seeded content, an empty cache.
	$bench_cpu "$bin" origin --listen "$origin" --seed "$seed" --edge-admin "$admin" >"$dir/origin.log" 2>&1 &
	pids="$pids $!"
	wait_up "http://$origin/healthz" origin
	case "$peer" in
	lakka)
		GOMAXPROCS=1 $peer_cpu "$bin" edge --listen "$listen" --admin "$admin" --backend "$origin" >"$dir/edge.log" 2>&1 &
		pids="$pids $!"
		wait_up "http://$admin/healthz" "lakka edge"
		;;
	varnish)
		sed -e "s|__ORIGIN_HOST__|${origin%:*}|; s|__ORIGIN_PORT__|${origin##*:}|" bench/peers/varnish.vcl >"$dir/varnish.vcl"
		chmod 644 "$dir/varnish.vcl"
		$peer_cpu varnishd -F -j none -a "$listen" -f "$dir/varnish.vcl" -n "$dir/varnish" -s malloc,256m \
			-p default_ttl=120 -p default_grace=10 >"$dir/varnish.log" 2>&1 &
		pids="$pids $!"
		"$bin" bench purge-relay --listen "$admin" --peer varnish --target "http://$listen" >"$dir/relay.log" 2>&1 &
		pids="$pids $!"
		wait_up "http://$admin/healthz" "purge relay"
		;;
	nginx)
		sed -e "s|__DIR__|$dir|g; s|__LISTEN__|$listen|; s|__ORIGIN__|$origin|" bench/peers/nginx.conf >"$dir/nginx.conf"
		$peer_cpu nginx -c "$dir/nginx.conf" -p "$dir" >"$dir/nginx.log" 2>&1 &
		pids="$pids $!"
		"$bin" bench purge-relay --listen "$admin" --peer nginx --target "http://$listen" --origin "http://$origin" >"$dir/relay.log" 2>&1 &
		pids="$pids $!"
		wait_up "http://$admin/healthz" "purge relay"
		;;
	*)
		echo "bench-peers: unknown peer $peer" >&2
		exit 2
		;;
	esac
	wait_up "http://$listen/healthz" "$peer"
	$bench_cpu "$bin" bench spike --target "http://$listen" --origin "http://$origin" \
		--duration "$duration" --rate "$rate" --spike-at "$spike_at" --spike-x "$spike_x" --ramp "$ramp" \
		--edit-every "$edit_every" --seed "$seed" --connections "$connections" \
		--label "$peer" --out "$out/$peer" >"$out/$peer.txt"
	stop_all
done

dirs="" pages=""
for p in $peers; do
	dirs="$dirs $out/$p"
	pages="$pages $out/$p/report.html"
done
echo
# shellcheck disable=SC2086
"$bin" bench compare $dirs
echo
echo "load average during the runs: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) (other work on the machine skews the figures)"
echo "reports:$pages"
