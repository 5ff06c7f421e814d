#!/usr/bin/env bash
# replay.sh: what `dagrun replay` of a large recorded run costs.
#
# Records the layered DAG of N tasks (gen_dag.py, -k 3, command `true`) at
# -j J into a fresh state directory, then times REPS runs of `dagrun replay
# last` (the export document built from the store, the workflow evaluated
# again on the replayer: nothing spawned) and of `dagrun replay FILE.json`
# (the same run exported first). Prints each wall time and the median
# (target: under 2 s at 10k tasks), the load, and the store's bytes per
# attempt of the recorded inputs (attempt_io).
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
st=$OUT/replay-state
rm -rf "$st"
tm replay-record "$DAGRUN" run -q --no-progress -j "$J" --state "$st" "$dir/workflow.yaml" >/dev/null
tm replay-export "$DAGRUN" export last --state "$st" -o "$OUT/replay.json" >/dev/null
: >"$OUT/logs/replay-run.w"; : >"$OUT/logs/replay-file.w"
for i in $(seq "$REPS"); do
	read -r w _ _ < <(tm replay-run "$DAGRUN" replay last --state "$st")
	echo "$w" >>"$OUT/logs/replay-run.w"
	read -r w _ _ < <(tm replay-file "$DAGRUN" replay "$OUT/replay.json" --state "$OUT/replay-none")
	echo "$w" >>"$OUT/logs/replay-file.w"
done
tail -1 "$OUT/logs/replay-run.log"
echo "layered $N tasks, $REPS runs each (load now $(cut -d' ' -f1-3 /proc/loadavg)):"
echo "  replay RUN   median $(median <"$OUT/logs/replay-run.w") s  (every run: $(paste -sd' ' "$OUT/logs/replay-run.w"))"
echo "  replay FILE  median $(median <"$OUT/logs/replay-file.w") s  (every run: $(paste -sd' ' "$OUT/logs/replay-file.w"))"
if command -v sqlite3 >/dev/null; then
	read -r io n att < <(sqlite3 -separator ' ' "$st/state.db" "SELECT (SELECT sum(pgsize)
		FROM dbstat WHERE name = 'attempt_io'), (SELECT count(*) FROM attempt_io),
		(SELECT sum(pgsize) FROM dbstat WHERE name = 'attempts')")
	echo "  state.db: attempt_io $(div "$io" "$n" 0) B per attempt on disk (attempts: $(div "$att" "$n" 0) B)"
fi
