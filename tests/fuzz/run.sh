#!/usr/bin/env bash
# run.sh: build the loader's libFuzzer target and run it.
#
# Usage: tests/fuzz/run.sh [SECONDS] [extra libFuzzer flags...]   (default 60)
# Builds with clang -fsanitize=fuzzer,address,undefined from the library
# sources directly into $FUZZ_OUT (default build-fuzz/), then fuzzes with
# tests/fuzz/seeds as the seed corpus and $FUZZ_OUT/corpus for new inputs.
# Crashes are written to $FUZZ_OUT/crash-*; exit status is libFuzzer's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
secs=${1:-60}
shift || true
out=${FUZZ_OUT:-$src/build-fuzz}
mkdir -p "$out/corpus"

# shellcheck disable=SC2046 # pkg-config output is meant to split
clang -std=c11 -D_GNU_SOURCE -fno-strict-aliasing -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -pthread \
	-I"$src/include" -I"$src/src" \
	"$here/fuzz_loader.c" "$src"/src/util/*.c "$src"/src/load/*.c "$src"/src/graph/*.c \
	"$src"/src/expr/*.c \
	$(pkg-config --cflags --libs yaml-0.1 libuv jansson lua5.4) -lm \
	-o "$out/fuzz_loader"

cd "$out"
exec ./fuzz_loader -max_total_time="$secs" -max_len=65536 -dict="$here/dict.txt" -timeout=10 \
	-rss_limit_mb=2048 -artifact_prefix="$out/" "$@" corpus "$here/seeds"
