#!/usr/bin/env bash
# ci.sh: build both libFuzzer targets and run each for $FUZZ_SECONDS (default
# 60) seconds; exits non-zero when either finds a crash, a leak, a sanitizer
# report or an input past its timeout. Needs clang and libFuzzer (on Debian
# 12: apt-get install clang libclang-rt-14-dev), plus the build's -dev
# packages. Each target gets a fresh output directory under $FUZZ_OUT
# (default build-fuzz-ci/), so a run starts from the seed corpus alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
secs=${FUZZ_SECONDS:-60}
base=${FUZZ_OUT:-$src/build-fuzz-ci}
status=0
for target in loader expr; do
	out=$base/$target
	rm -rf "$out"
	mkdir -p "$out"
	echo "== fuzz_$target: ${secs}s"
	if ! FUZZ_OUT=$out "$here/run.sh" "$target" "$secs" -print_final_stats=1 \
		>"$out/fuzz.log" 2>&1; then
		echo "fuzz_$target FAILED; the end of $out/fuzz.log:" >&2
		tail -n 60 "$out/fuzz.log" >&2
		ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* 2>/dev/null >&2 || true
		status=1
	else
		grep -E '^(Done|stat::number_of_executed_units)' "$out/fuzz.log" || true
	fi
done
exit $status
