# shellcheck shell=bash disable=SC2034
# common.sh: shared by validate.sh and run.sh (sourced, not run).
# Builds the benchmark programs in a release build directory, generates
# DAGs with gen_dag.py (cached in bench/out/) and times commands.

set -eu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}       # a --buildtype=release build
GEN=${GEN:-$ROOT/../shared/tools/gen_dag.py}
OUT=$ROOT/bench/out                     # gitignored
DAGRUN=$BUILD/src/cli/dagrun
mkdir -p "$OUT/logs"

# Configures (release) and builds dagrun and the bench programs.
build() {
	[ -d "$BUILD" ] || meson setup "$BUILD" --buildtype=release >/dev/null
	ninja -C "$BUILD" src/cli/dagrun bench/bare_yaml bench/spawn_floor \
		bench/sched_fake >/dev/null
}

# gen SHAPE N: prints the directory holding that DAG (layered: -k 3),
# generating it unless already there. The generator is deterministic.
gen() {
	local dir=$OUT/$1-$2
	if [ ! -s "$dir/workflow.yaml" ]; then
		python3 "$GEN" --tasks "$2" --shape "$1" -k 3 --out "$dir" 2>/dev/null
	fi
	echo "$dir"
}

# tm NAME CMD...: runs CMD under /usr/bin/time, output to a log file;
# prints "WALL_SECONDS MAXRSS_KB CPU_SECONDS" (CPU: user + system of CMD
# and the children it waited for). Fails (with the log's tail) if CMD fails.
tm() {
	local name=$1 t
	shift
	t=$OUT/logs/$name.time
	if ! /usr/bin/time -f '%e %M %U %S' -o "$t" "$@" >"$OUT/logs/$name.log" 2>&1; then
		echo "FAILED: $*" >&2
		tail -5 "$OUT/logs/$name.log" >&2
		return 1
	fi
	awk 'END { printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$t"
}

# Arithmetic helpers: div A B [DECIMALS], mb KB.
div() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { printf("%." d "f", (b > 0) ? a / b : 0) }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# The machine, for the record.
machine() {
	echo "# $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
}
