#!/usr/bin/env bash
# cache.sh: a run whose tasks are all cache hits against the same run
# uncached (README "Cache").
#
# The layered DAG of N tasks (gen_dag.py, -k 3, command `true`) twice: as
# generated (no `cache`), and with `defaults: {cache: true}` added. The
# cached one is run once to fill the cache, then, alternating, REPS runs
# of each: `dagrun run` of the plain workflow (every task runs, recorded
# into a state directory of its own) and of the cached one (every task a
# hit: nothing is spawned). Prints the medians of wall and CPU time
# (dagrun and its children, /usr/bin/time), every run, the ratio hits /
# uncached (target: at most 0.10 in wall time), and the load before and
# after. Then one --no-cache run of the cached workflow (every task runs
# and writes its entry: what computing keys adds to an uncached run).
#
# Environment (defaults in brackets): N [10000], J [2], REPS [5].
. "$(dirname "$0")/common.sh"
N=${N-10000}
J=${J-2}
REPS=${REPS-5}
build
machine

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

dir=$(gen layered "$N")
cdir=$OUT/cache-layered-$N
mkdir -p "$cdir"
awk 'NR == 1 { print; print "defaults:"; print "  cache: true"; next } { print }' \
	"$dir/workflow.yaml" >"$cdir/workflow.yaml"
plain=$OUT/cache-plain-state
cached=$OUT/cache-hit-state
rm -rf "$plain" "$cached"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
tm cache-fill "$DAGRUN" run -q --no-progress -j "$J" --state "$cached" "$cdir/workflow.yaml" >/dev/null
for k in plain.w plain.c hit.w hit.c; do : >"$OUT/logs/cache-$k"; done
for i in $(seq "$REPS"); do
	read -r w _ c < <(tm cache-plain "$DAGRUN" run -q --no-progress -j "$J" --state "$plain" \
		"$dir/workflow.yaml")
	echo "$w" >>"$OUT/logs/cache-plain.w"; echo "$c" >>"$OUT/logs/cache-plain.c"
	read -r w _ c < <(tm cache-hit "$DAGRUN" run -q --no-progress -j "$J" --state "$cached" \
		"$cdir/workflow.yaml")
	echo "$w" >>"$OUT/logs/cache-hit.w"; echo "$c" >>"$OUT/logs/cache-hit.c"
done
if ! grep -q "cached: $N tasks completed from the cache" "$OUT/logs/cache-hit.log"; then
	echo "FAILED: the last cached run did not hit for every task:" >&2
	tail -3 "$OUT/logs/cache-hit.log" >&2
	exit 1
fi
wp=$(median <"$OUT/logs/cache-plain.w"); cp=$(median <"$OUT/logs/cache-plain.c")
wh=$(median <"$OUT/logs/cache-hit.w"); ch=$(median <"$OUT/logs/cache-hit.c")
echo "layered $N tasks, -j $J, $REPS runs each, interleaved, medians:"
printf '  uncached     wall %7.2f s  CPU %7.2f s\n' "$wp" "$cp"
printf '  all hits     wall %7.2f s  CPU %7.2f s\n' "$wh" "$ch"
printf '  ratio        wall %7s    CPU %7s   (target: wall <= 0.10)\n' "$(div "$wh" "$wp" 3)" \
	"$(div "$ch" "$cp" 3)"
echo "  every run (uncached / hits): wall $(paste -sd' ' "$OUT/logs/cache-plain.w") / $(paste -sd' ' "$OUT/logs/cache-hit.w")"
read -r w _ c < <(tm cache-nocache "$DAGRUN" run -q --no-progress -j "$J" --no-cache \
	--state "$cached" "$cdir/workflow.yaml")
printf '  --no-cache   wall %7.2f s  CPU %7.2f s   (one run: keys computed, entries written)\n' \
	"$w" "$c"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
