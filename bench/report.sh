#!/usr/bin/env bash
# report.sh: the report module's renderers on run documents of 1k, 10k and
# 100k tasks (tests/report/gen_rundoc.py, cached in bench/out/): reading
# the document, then the HTML report, the trace and the text Gantt; best
# and median of REPS runs (default 5). Target: the HTML of a 10k-task run
# in under 1 s.
. "$(dirname "$0")/common.sh"
REPS=${REPS:-5}
SIZES=${SIZES:-1000 10000 100000}
[ -d "$BUILD" ] || meson setup "$BUILD" --buildtype=release -Dbench=true >/dev/null
meson configure "$BUILD" -Dbench=true >/dev/null
ninja -C "$BUILD" bench/report_bench >/dev/null
machine
for n in $SIZES; do
	doc=$OUT/rundoc-$n.json
	[ -s "$doc" ] || python3 "$ROOT/tests/report/gen_rundoc.py" "$n" "$doc"
	echo "## $n tasks ($(du -m "$doc" | cut -f1) MB document)"
	"$BUILD/bench/report_bench" "$doc" "$REPS"
done
