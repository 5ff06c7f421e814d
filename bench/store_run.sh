#!/usr/bin/env bash
# store_run.sh: what recording a run in the state store costs.
#
#  1. The layered DAG of SMALL tasks (gen_dag.py, -k 3, command `true`) at
#     -j J: `dagrun run` recording into a fresh state directory, against the
#     same run with --no-state, alternating, REPS runs of each; the medians
#     of wall and CPU time (dagrun and its children) and their ratios
#     (target: wall at most 1.05x), and dagrun's own CPU time apart (all
#     its threads, its tasks excluded: bench/selfcpu.py), the figure the
#     machine's load disturbs least: what the store adds to it, per task
#     and as a share of the whole --no-state run's CPU.
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
for f in on.w on.s on.c off.w off.s off.c; do : >"$OUT/logs/store-$f"; done
# one run: wall, dagrun's own CPU (all threads), its tasks' CPU (selfcpu.py)
one() {
	local name=$1 w s c
	shift
	if ! read -r w s c < <(python3 "$ROOT/bench/selfcpu.py" "$@" 2>"$OUT/logs/store-$name.log"); then
		echo "FAILED: $*" >&2
		return 1
	fi
	echo "$w" >>"$OUT/logs/store-$name.w"
	echo "$s" >>"$OUT/logs/store-$name.s"
	awk -v s="$s" -v c="$c" 'BEGIN { printf "%.3f\n", s + c }' >>"$OUT/logs/store-$name.c"
}
for i in $(seq "$REPS"); do
	rm -rf "$st"
	one on "$DAGRUN" run -q --no-progress -j "$J" --state "$st" "$dir/workflow.yaml"
	one off "$DAGRUN" run -q --no-progress -j "$J" --no-state "$dir/workflow.yaml"
done
m() { median <"$OUT/logs/store-$1"; }
echo "layered $SMALL tasks, -j $J, $REPS runs each, medians (load now $(cut -d' ' -f1 /proc/loadavg)):"
printf '  --no-state   wall %7.2f s  CPU %7.2f s  dagrun alone %6.3f s\n' "$(m off.w)" "$(m off.c)" "$(m off.s)"
printf '  store        wall %7.2f s  CPU %7.2f s  dagrun alone %6.3f s\n' "$(m on.w)" "$(m on.c)" "$(m on.s)"
printf '  ratio        wall %7s    CPU %7s\n' "$(div "$(m on.w)" "$(m off.w)")" "$(div "$(m on.c)" "$(m off.c)")"
printf '  the store in dagrun alone: %s s more, %s us per task, %s of the --no-state CPU\n' \
	"$(awk -v a="$(m on.s)" -v b="$(m off.s)" 'BEGIN { printf "%.3f", a - b }')" \
	"$(awk -v a="$(m on.s)" -v b="$(m off.s)" -v n="$SMALL" 'BEGIN { printf "%.1f", (a - b) * 1e6 / n }')" \
	"$(awk -v a="$(m on.s)" -v b="$(m off.s)" -v c="$(m off.c)" 'BEGIN { printf "%.3f", (a - b) / c }')"
echo "  every run (store / --no-state): wall $(paste -sd' ' "$OUT/logs/store-on.w") / $(paste -sd' ' "$OUT/logs/store-off.w")"
echo "  dagrun alone (store / --no-state): $(paste -sd' ' "$OUT/logs/store-on.s") / $(paste -sd' ' "$OUT/logs/store-off.s")"

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
