#!/usr/bin/env bash
# run.sh: build one of the libFuzzer targets and run it.
#
# Usage: tests/fuzz/run.sh [loader|expr] [SECONDS] [extra libFuzzer flags...]
#        (default: loader, 60 seconds; `run.sh 120` fuzzes the loader 120 s)
#   loader  fuzz_loader.c: workflow files (seeds: tests/fuzz/seeds/)
#   expr    fuzz_expr.c: expressions and templates in every render mode,
#           evaluated in the sandbox with its limits (seeds:
#           tests/fuzz/seeds-expr/; the first byte of an input picks the mode)
# Builds with clang -fsanitize=fuzzer,address,undefined from the library
# sources directly into $FUZZ_OUT (default build-fuzz/) as fuzz_TARGET, then
# fuzzes with the seed corpus, and $FUZZ_OUT/corpus-TARGET for new inputs
# (the loader's is $FUZZ_OUT/corpus, as before). Crashes, leaks and inputs
# that run longer than the -timeout ($FUZZ_TIMEOUT, default 10 s: far above
# every limit of the sandbox) are written to $FUZZ_OUT/crash-*, leak-*,
# timeout-*; the exit status is libFuzzer's (non-zero when it found one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
target=loader
case "${1:-}" in
loader | expr)
	target=$1
	shift
	;;
esac
secs=${1:-60}
shift || true
out=${FUZZ_OUT:-$src/build-fuzz}
case $target in
loader) corpus=$out/corpus seeds=$here/seeds dict=$here/dict.txt max_len=65536 ;;
expr) corpus=$out/corpus-expr seeds=$here/seeds-expr dict=$here/dict-expr.txt max_len=4096 ;;
esac
mkdir -p "$corpus"

# shellcheck disable=SC2046 # pkg-config output is meant to split
clang -std=c11 -D_GNU_SOURCE -fno-strict-aliasing -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -pthread \
	-I"$src/include" -I"$src/src" \
	"$here/fuzz_$target.c" "$src"/src/util/*.c "$src"/src/model/*.c "$src"/src/load/*.c \
	"$src"/src/graph/*.c "$src"/src/workflow/*.c "$src"/src/kinds/*.c "$src"/src/exec/*.c \
	"$src"/src/sched/*.c "$src"/src/store/*.c \
	"$src"/src/expr/*.c \
	$(pkg-config --cflags --libs yaml-0.1 libuv jansson lua5.4 libcurl sqlite3 libcrypto) -lm \
	-o "$out/fuzz_$target"

cd "$out"
exec "./fuzz_$target" -max_total_time="$secs" -max_len="$max_len" -dict="$dict" -timeout="${FUZZ_TIMEOUT:-10}" \
	-rss_limit_mb=2048 -artifact_prefix="$out/" "$@" "$corpus" "$seeds"
