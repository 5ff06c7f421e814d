#!/usr/bin/env bash
# validate.sh: how fast `dagrun validate` reads a workflow, against the floor
# (a bare libyaml event loop over the same file, bench/bare_yaml.c), and how
# much memory it needs per task. Layered DAGs (gen_dag.py -k 3) of 10k, 100k
# and 1M tasks; each is timed REPS times (default 3), best wall and CPU
# (user + system) times and highest peak RSS kept, bare parse and validate
# alternating in the same run. "CPU rat." is the ratio of CPU times: on a
# shared machine it moves less than the wall-time ratio.
#
# Usage: bench/validate.sh [SIZES...]   (default: 10000 100000 1000000)
# Targets at 1M: validate within 1.3x of the bare parse in wall time and
# 1.6x in CPU time; under 300 bytes/task.
. "$(dirname "$0")/common.sh"
REPS=${REPS:-3}
SIZES=${*:-10000 100000 1000000}

build
machine
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? a : b }'; }
printf '%-8s %8s %7s %10s %6s %8s %9s %10s\n' tasks "file MB" "bare s" "validate s" ratio \
	"CPU rat." "peak MB" "bytes/task"
for n in $SIZES; do
	f=$(gen layered "$n")/workflow.yaml
	bare=1e9 val=1e9 bcpu=1e9 vcpu=1e9 rss=0
	for _ in $(seq "$REPS"); do
		r=$(tm "bare-$n" "$BUILD/bench/bare_yaml" "$f")
		read -r s _ c <<<"$r"
		bare=$(min "$s" "$bare") bcpu=$(min "$c" "$bcpu")
		r=$(tm "validate-$n" "$DAGRUN" validate -q "$f")
		read -r s k c <<<"$r"
		val=$(min "$s" "$val") vcpu=$(min "$c" "$vcpu")
		rss=$(( k > rss ? k : rss ))
	done
	printf '%-8s %8s %7s %10s %6s %8s %9s %10s\n' "$n" \
		"$(awk -v b="$(stat -c %s "$f")" 'BEGIN { printf "%.1f", b / 1048576 }')" \
		"$bare" "$val" "$(div "$val" "$bare")" "$(div "$vcpu" "$bcpu")" "$(mb "$rss")" \
		"$(div $((rss * 1024)) "$n" 0)"
done
