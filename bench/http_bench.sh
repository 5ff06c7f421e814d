#!/usr/bin/env bash
# http_bench.sh: the api executor against curl's own parallel mode.
#
# Serves a small static file from nginx (generated config in a temporary
# directory, 127.0.0.1 only; tests/http/server.py when nginx is missing),
# then fetches it N times (default 10,000) with P in flight (default 64):
#   - through the executor (bench/http_driver.c, linked with libdagrun.a),
#   - with `curl --parallel --parallel-max P` over the same N URLs.
# Prints the best of R runs (default 3) of each and the ratio. Target: the
# executor within 1.5x of curl.
#
# Usage: bench/http_bench.sh [N] [P] [R]
#   BUILD=dir: a release build dir (default build-http-bench, configured here)
#   USE_PYTHON=1: use tests/http/server.py even when nginx is installed
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-10000}
P=${2:-64}
R=${3:-3}
BUILD=${BUILD:-$ROOT/build-http-bench}
TMP=$(mktemp -d /tmp/dagrun-http-bench.XXXXXX)
SERVER_PID=

cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

# ---- build -------------------------------------------------------------------------
[ -d "$BUILD" ] || meson setup "$BUILD" "$ROOT" --buildtype=release >/dev/null
ninja -C "$BUILD" src/libdagrun.a >/dev/null
DEPS="libuv jansson libcurl libcrypto lua5.4 yaml-0.1"
cc -O2 -std=c11 -D_GNU_SOURCE -I"$ROOT/include" -I"$ROOT/src" $(pkg-config --cflags $DEPS) \
	"$ROOT/bench/http_driver.c" -o "$TMP/http_driver" "$BUILD/src/libdagrun.a" \
	$(pkg-config --libs $DEPS) -lm -lpthread

# ---- server ----------------------------------------------------------------------------
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

mkdir -p "$TMP/www" "$TMP/logs"
chmod 755 "$TMP" "$TMP/www"
head -c 512 /dev/zero | tr '\0' 'x' >"$TMP/www/small.txt"
chmod 644 "$TMP/www/small.txt"
PORT=$(free_port)
if [ -z "${USE_PYTHON:-}" ] && { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }; then
	NGINX=$(command -v nginx || echo /usr/sbin/nginx)
	cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $TMP/body;
	proxy_temp_path $TMP/proxy;
	fastcgi_temp_path $TMP/fastcgi;
	uwsgi_temp_path $TMP/uwsgi;
	scgi_temp_path $TMP/scgi;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$PORT;
		root $TMP/www;
	}
}
EOF
	"$NGINX" -p "$TMP" -c "$TMP/nginx.conf" &
	SERVER_PID=$!
	SERVER="nginx $("$NGINX" -v 2>&1 | sed 's/.*\///')"
	URL="http://127.0.0.1:$PORT/small.txt"
else
	# The test server picks its own port, prints it, and exits with its stdin.
	coproc SRV { exec python3 "$ROOT/tests/http/server.py"; }
	SERVER_PID=$SRV_PID
	read -r PORT <&"${SRV[0]}"
	SERVER="tests/http/server.py"
	URL="http://127.0.0.1:$PORT/small?body=$(head -c 512 /dev/zero | tr '\0' 'x')"
fi
for _ in $(seq 50); do
	curl -sf -o /dev/null "$URL" && break
	sleep 0.1
done
curl -sf -o /dev/null "$URL" || { echo "server did not come up" >&2; exit 1; }

# ---- runs --------------------------------------------------------------------------
for i in $(seq "$N"); do
	printf 'url = "%s"\noutput = "/dev/null"\n' "$URL"
done >"$TMP/curl.cfg"

now() { date +%s.%N; }

best() {  # best CMD...: the shortest wall time of R runs, in seconds
	local b= t0 t1 d
	for _ in $(seq "$R"); do
		t0=$(now)
		"$@" >"$TMP/out.log" 2>&1 || { echo "FAILED: $*" >&2; tail -3 "$TMP/out.log" >&2; exit 1; }
		t1=$(now)
		d=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
		if [ -z "$b" ] || awk -v d="$d" -v b="$b" 'BEGIN { exit !(d < b) }'; then b=$d; fi
	done
	printf '%.3f' "$b"
}

EXEC=$(best "$TMP/http_driver" "$URL" "$N" "$P")
CURL=$(best curl -s -f --parallel --parallel-max "$P" -K "$TMP/curl.cfg")
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
echo "server: $SERVER, $N GETs of a 512-byte file, $P in flight, best of $R"
echo "executor (http_driver): $EXEC s  ($(calc %.0f "$N / $EXEC") req/s)"
echo "curl --parallel:        $CURL s  ($(calc %.0f "$N / $CURL") req/s)"
echo "ratio executor/curl:    $(calc %.2f "$EXEC / $CURL")  (target <= 1.5)"
