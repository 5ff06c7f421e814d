#!/usr/bin/env bash
# build.sh: set up, build and run dagrun; works on a fresh Debian 12 as root.
#
#   ./build.sh quickstart   install what is missing, build, run examples/quickstart.yaml
#   ./build.sh test         install what is missing, build, run every test
#   ./build.sh test-asan    the same tests under AddressSanitizer + UBSan (build-asan/)
#   ./build.sh deps         only install the missing Debian packages
#
# Packages are installed with apt-get only when pkg-config (or the PATH)
# cannot find them, so on a set-up machine this never touches the network.
set -euo pipefail
cd "$(dirname "$0")"

PKGS_PC="yaml-0.1:libyaml-dev libuv:libuv1-dev jansson:libjansson-dev lua5.4:liblua5.4-dev libcurl:libcurl4-openssl-dev libcrypto:libssl-dev cmocka:libcmocka-dev sqlite3:libsqlite3-dev"
PKGS_BIN="meson:meson ninja:ninja-build pkg-config:pkg-config cc:gcc python3:python3 dot:graphviz"

deps() {
  local missing=()
  for pair in $PKGS_BIN; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  for pair in $PKGS_PC; do
    if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "${pair%%:*}"; then
      missing+=("${pair#*:}")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "build.sh: installing ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

build() {  # build DIR [meson options...]
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir" >/dev/null
}

run_tests() {  # run_tests DIR
  local dir=$1 rc=0
  meson test -C "$dir" --print-errorlogs --num-processes 2 || rc=$?
  # One closing line that any CI reader understands.
  python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: fail += 1
print("%d passed, %d failed, %d skipped" % (ok, fail, skip))
PY
  return $rc
}

case "${1:-}" in
  deps) deps ;;
  quickstart)
    deps
    build build
    ./build/src/cli/dagrun run examples/quickstart.yaml
    ;;
  test)
    deps
    build build
    run_tests build
    ;;
  test-asan)
    deps
    build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      run_tests build-asan
    ;;
  *)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
