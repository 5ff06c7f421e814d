#!/usr/bin/env bash
# store_run.sh: what recording a run in the state store costs.
#
#  1. The layered DAG of SMALL tasks (gen_dag.py, -k 3, command `true`) at
#     -j J: `dagrun run` recording into a fresh state directory, against the
#     same run with --no-state, alternating, REPS runs of each; the medians
#     of wall and CPU time (dagrun and its children, /usr/bin/time) and
#     their ratios (target: wall at most 1.05x).
#  2. sched_fake (the engine on the fake executor, nothing spawned) on the
#     layered DAG of FAKE tasks, without and with the store, alternating,
#     FAKE_REPS each: CPU microseconds per task (engine and store: the
#     store's writer thread is in the process's CPU time; target at most
#     5 us), and state.db's size per task attempt after the run (outputs
#     are in log files, and the fake writes none; target at most 300 B).
#
# Environment (defaults in brackets): SMALL [10000], J [2], REPS [5],
# FAKE [1000000] (empty: skip), FAKE_REPS [3]. Uses bench/out/ like run.sh.
. "$(dirname "$0")/common.sh"
SMALL=${SMALL-10000}
J=${J-2}
REPS=${REPS-5}
FAKE=${FAKE-1000000}
FAKE_REPS=${FAKE_REPS-3}
build
ninja -C "$BUILD" bench/sched_fake >/dev/null
machine

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

dir=$(gen layered "$SMALL")
st=$OUT/store-state
: >"$OUT/logs/store-on.w"; : >"$OUT/logs/store-on.c"
: >"$OUT/logs/store-off.w"; : >"$OUT/logs/store-off.c"
for i in $(seq "$REPS"); do
	rm -rf "$st"
	read -r w _ c < <(tm store-on "$DAGRUN" run -q --no-progress -j "$J" --state "$st" "$dir/workflow.yaml")
	echo "$w" >>"$OUT/logs/store-on.w"; echo "$c" >>"$OUT/logs/store-on.c"
	read -r w _ c < <(tm store-off "$DAGRUN" run -q --no-progress -j "$J" --no-state "$dir/workflow.yaml")
	echo "$w" >>"$OUT/logs/store-off.w"; echo "$c" >>"$OUT/logs/store-off.c"
done
won=$(median <"$OUT/logs/store-on.w"); woff=$(median <"$OUT/logs/store-off.w")
con=$(median <"$OUT/logs/store-on.c"); coff=$(median <"$OUT/logs/store-off.c")
echo "layered $SMALL tasks, -j $J, $REPS runs each, medians (load now $(cut -d' ' -f1 /proc/loadavg)):"
printf '  --no-state   wall %7.2f s  CPU %7.2f s\n' "$woff" "$coff"
printf '  store        wall %7.2f s  CPU %7.2f s\n' "$won" "$con"
printf '  ratio        wall %7s    CPU %7s\n' "$(div "$won" "$woff")" "$(div "$con" "$coff")"
echo "  every run (store / --no-state): wall $(paste -sd' ' "$OUT/logs/store-on.w") / $(paste -sd' ' "$OUT/logs/store-off.w")"

if [ -n "$FAKE" ]; then
	fdir=$(gen layered "$FAKE")
	echo "sched_fake, layered $FAKE tasks, -j 8, $FAKE_REPS runs each (load now $(cut -d' ' -f1 /proc/loadavg)):"
	for i in $(seq "$FAKE_REPS"); do
		"$BUILD/bench/sched_fake" "$fdir/workflow.yaml" 8 | sed -n 's/^run /  no store  /p'
		rm -rf "$OUT/fake-state"
		"$BUILD/bench/sched_fake" "$fdir/workflow.yaml" 8 "$OUT/fake-state" |
			sed -n 's/^run /  store     /p; s/^state.db /  store     state.db /p'
	done
fi
