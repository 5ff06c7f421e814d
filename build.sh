#!/usr/bin/env bash
# build.sh: set up, build and run dagrun; works on a fresh Debian 12 as root.
#
#   ./build.sh quickstart   install what is missing, build, run examples/quickstart.yaml
#   ./build.sh test         install what is missing, build, run every test
#   ./build.sh test-asan    the same tests under AddressSanitizer + UBSan (build-asan/)
#   ./build.sh test-tsan    the same tests under ThreadSanitizer (build-tsan/)
#   ./build.sh fuzz         both libFuzzer targets, 60 s each (clang; FUZZ_SECONDS)
#   ./build.sh deps         only install the missing Debian packages (and the tests')
#
# Packages are installed with apt-get only when pkg-config (or the PATH)
# cannot find them, so on a set-up machine this never touches the network.
# These are development builds: warnings are errors (-Dwerror=true; a plain
# `meson setup` leaves them warnings). WERROR=false ./build.sh ... builds anyway.
# A build directory that exists is reconfigured with the options below, so
# options never go stale; the compiler's output is shown when the build fails.
set -euo pipefail
cd "$(dirname "$0")"

WERROR=${WERROR:-true}

# pkg-config name:Debian package, then command:Debian package. The tests run
# openssl (certificates, HMAC), curl, dot, nm, readelf and a C compiler
# against the installed library (tests/install); python3 uses its standard
# library only. libgraphviz-dev: libgvc and libcgraph, and the link names
# of the dot layout and core plug-ins the report module links in.
# libmicrohttpd-dev: the HTTP server of `dagrun serve` (README, "The server").
PKGS_PC="yaml-0.1:libyaml-dev libuv:libuv1-dev jansson:libjansson-dev lua5.4:liblua5.4-dev libcurl:libcurl4-openssl-dev libcrypto:libssl-dev cmocka:libcmocka-dev sqlite3:libsqlite3-dev libgvc:libgraphviz-dev libcgraph:libgraphviz-dev libmicrohttpd:libmicrohttpd-dev"
PKGS_BIN="meson:meson ninja:ninja-build pkg-config:pkg-config cc:gcc python3:python3 dot:graphviz openssl:openssl curl:curl nm:binutils readelf:binutils"
# Only for the tests (not for quickstart): the HTML report is checked in
# headless Chromium (tests/report); the server's /metrics with promtool
# (Debian's prometheus package; tests/cli/test_serve.py).
PKGS_TEST_BIN="chromium:chromium promtool:prometheus"

deps() {  # deps [test]: what the build needs, and with "test" what the tests need
  local missing=() bins=$PKGS_BIN
  [ "${1:-}" != test ] || bins="$PKGS_BIN $PKGS_TEST_BIN"
  for pair in $bins; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  for pair in $PKGS_PC; do
    if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "${pair%%:*}"; then
      missing+=("${pair#*:}")
    fi
  done
  apt_install "${missing[@]}"
}

apt_install() {  # apt_install PACKAGE... (nothing to do without arguments)
  [ $# -gt 0 ] || return 0
  local missing
  # Each package once, in order.
  mapfile -t missing < <(printf '%s\n' "$@" | awk '!seen[$0]++')
  echo "build.sh: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# clang and its libFuzzer runtime, for tests/fuzz.
fuzz_deps() {
  local missing=()
  command -v clang >/dev/null 2>&1 || missing+=(clang)
  dpkg -s libclang-rt-14-dev >/dev/null 2>&1 || missing+=(libclang-rt-14-dev)
  apt_install "${missing[@]}"
}

# Runs a command with its output in LOG; on failure prints LOG and fails.
quiet() {  # quiet LOG command...
  local log=$1; shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    return 1
  fi
}

build() {  # build DIR [meson options...]
  local dir=$1; shift
  local opts=(-Dwerror="$WERROR" "$@")
  local log
  log=$(mktemp)
  if [ -f "$dir/meson-private/coredata.dat" ]; then
    # Apply the wanted options (cheap when nothing changed; ninja then
    # rebuilds what they affect). A directory meson cannot reconfigure (made
    # by another meson version, broken) is made again from scratch.
    if ! meson setup --reconfigure "$dir" "${opts[@]}" >"$log" 2>&1; then
      echo "build.sh: cannot reconfigure $dir; setting it up again" >&2
      rm -rf "$dir"
    fi
  fi
  if [ ! -f "$dir/build.ninja" ]; then
    quiet "$log" meson setup "$dir" "${opts[@]}" || { rm -f "$log"; echo "build.sh: meson setup $dir failed" >&2; return 1; }
  fi
  if ! quiet "$log" ninja -C "$dir"; then
    if [ "$WERROR" = true ] && grep -q -- '-Werror' "$log"; then
      echo "build.sh: a compiler warning stopped the build (warnings are errors in" \
           "development builds); WERROR=false ./build.sh ${CMD:-test} builds anyway" >&2
    fi
    rm -f "$log"
    echo "build.sh: the build in $dir failed (the compiler's output is above)" >&2
    return 1
  fi
  rm -f "$log"
}

run_tests() {  # run_tests DIR [meson test options...]
  local dir=$1 rc=0; shift
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" || rc=$?
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

# TSan maps its shadow memory at fixed addresses; kernels with more mmap
# randomisation (vm.mmap_rnd_bits = 32, Linux >= 6.5 on some distributions)
# make GCC 12's runtime fail with "unexpected memory mapping". Sets TSAN_RUN
# to the prefix the tests need: nothing, or `setarch -R` (no randomisation
# for the tests' process tree), after running a small threaded program.
tsan_probe() {
  local d
  d=$(mktemp -d)
  cat >"$d/probe.c" <<'C'
#include <pthread.h>
static void *run(void *p) { return p; }
int main(void) { pthread_t t; return pthread_create(&t, 0, run, 0) || pthread_join(t, 0); }
C
  if ! cc -fsanitize=thread -g "$d/probe.c" -o "$d/probe" -pthread >"$d/log" 2>&1; then
    cat "$d/log" >&2; rm -rf "$d"
    echo "build.sh: cannot build with -fsanitize=thread (is the compiler's libtsan installed?)" >&2
    return 1
  fi
  TSAN_RUN=()
  if ! "$d/probe" >"$d/log" 2>&1; then
    if setarch "$(uname -m)" -R "$d/probe" >/dev/null 2>&1; then
      echo "build.sh: ThreadSanitizer needs less address randomisation here" \
           "(vm.mmap_rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null)): tests run under setarch -R" >&2
      TSAN_RUN=(setarch "$(uname -m)" -R)
    else
      cat "$d/log" >&2; rm -rf "$d"
      echo "build.sh: a ThreadSanitizer program does not run on this kernel;" \
           "try: sysctl vm.mmap_rnd_bits=28" >&2
      return 1
    fi
  fi
  rm -rf "$d"
}

# Prints the time a phase took, for CI logs.
timed() {  # timed NAME command...
  local name=$1 t0=$SECONDS rc=0; shift
  "$@" || rc=$?
  echo "build.sh: $name took $((SECONDS - t0))s" >&2
  return $rc
}

CMD=${1:-}
case "$CMD" in
  deps) deps test ;;
  quickstart)
    deps
    build build -Dbuildtype=debugoptimized -Db_sanitize=none -Db_lundef=true
    ./build/src/cli/dagrun run examples/quickstart.yaml
    ;;
  test)
    deps test
    timed "build (build/)" build build -Dbuildtype=debugoptimized -Db_sanitize=none -Db_lundef=true
    timed "tests (build/)" run_tests build
    ;;
  test-asan)
    deps test
    timed "build (build-asan/)" build build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      timed "tests (build-asan/)" run_tests build-asan
    ;;
  test-tsan)
    # The whole suite, so that every test that starts a thread is covered:
    # the loader's producer thread (suite load: load_pipe, load_input, large
    # files), the console and JSON log writer thread (suite obs and every
    # `dagrun run` of suite cli), and the store's writer thread when it comes.
    # A race report fails the run even when the racing process was expected
    # to fail (reports are collected from build-tsan/tsan/, not stderr).
    deps test
    tsan_probe
    timed "build (build-tsan/)" build build-tsan -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false
    rm -rf build-tsan/tsan && mkdir -p build-tsan/tsan
    rc=0
    TSAN_OPTIONS="log_path=$PWD/build-tsan/tsan/report second_deadlock_stack=1" \
      timed "tests (build-tsan/)" "${TSAN_RUN[@]}" "$0" run-tests build-tsan || rc=$?
    if compgen -G "build-tsan/tsan/report*" >/dev/null; then
      cat build-tsan/tsan/report* >&2
      echo "build.sh: ThreadSanitizer reported the problems above ($(ls build-tsan/tsan | wc -l) reports)" >&2
      rc=1
    fi
    exit $rc
    ;;
  fuzz)
    deps
    fuzz_deps
    timed "fuzz (build-fuzz-ci/)" tests/fuzz/ci.sh
    ;;
  run-tests)  # internal: run_tests in a fresh process (under setarch for TSan)
    run_tests "$2"
    ;;
  *)
    sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"
    exit 2
    ;;
esac
