#!/usr/bin/env bash
# run.sh: dagrun against ninja, make and the floor, running DAGs of `true`.
#
# For each configuration (shape, tasks, -j J), one run each, side by side:
#   dagrun     dagrun run -q --no-progress --no-state -j J workflow.yaml
#              (`true` has no shell syntax: dagrun execs it directly; not
#              recorded, as ninja and make record nothing: store_run.sh
#              measures what recording costs)
#   ninja      ninja --quiet -C DIR -j J (outputs never exist: every edge
#              runs; always via /bin/sh -c); .ninja_log removed first
#   make       make -C DIR -j J -s (GNU make also execs `true` directly)
#   floor-sh   spawn_floor N J /bin/sh -c true   (what ninja must pay)
#   floor-true spawn_floor N J /bin/true         (what dagrun and make must pay)
# Wall times and peak RSS from /usr/bin/time -f '%e %M'. Ratios compare each
# runner with the floor that spawns the same processes: dagrun/floor-true,
# ninja/floor-sh, make/floor-true. Then, spawning nothing: peak RSS of the
# three runners' dry runs at BIG (dagrun --dry-run, ninja -n, make -n), and
# sched_fake on a 1M-task layered DAG (the engine's own cost per task) next
# to `ninja -n` on the same DAG (parse + plan, for context).
#
# Environment (defaults in brackets):
#   SMALL [10000]  SMALL_CONFIGS [wide:2 wide:8 layered:2 layered:8]  SHAPE:J
#   BIG [100000]  BIG_CONFIGS [layered:8 wide:2]  extra SHAPE:J runs at BIG
#   WHO [dagrun ninja make floor-sh floor-true]   contenders to run
#   BIG_WHO [$WHO]  contenders at BIG (spawning 100k takes 1-6 min each)
#   FAKE [1000000]  tasks for sched_fake and ninja -n (empty: skip)
# Targets: dagrun under 500 bytes of peak RSS per task at 100k.
. "$(dirname "$0")/common.sh"
SMALL=${SMALL-10000}
SMALL_CONFIGS=${SMALL_CONFIGS-wide:2 wide:8 layered:2 layered:8}
BIG=${BIG-100000}
BIG_CONFIGS=${BIG_CONFIGS-layered:8 wide:2}
WHO=${WHO-dagrun ninja make floor-sh floor-true}
BIG_WHO=${BIG_WHO-$WHO}
FAKE=${FAKE-1000000}
unset MAKEFLAGS MFLAGS

# run_one WHO SHAPE N J DIR LIST: prints "WALL MAXRSS_KB CPU", or "- 0 -"
# when WHO is not in LIST.
run_one() {
	local who=$1 n=$3 j=$4 dir=$5 tag=$1-$2-$3-j$4
	case " $6 " in *" $who "*) ;; *) echo "- 0 -"; return ;; esac
	case $who in
	dagrun) tm "$tag" "$DAGRUN" run -q --no-progress --no-state -j "$j" "$dir/workflow.yaml" ;;
	ninja) rm -f "$dir/.ninja_log" "$dir/.ninja_deps"
	       tm "$tag" ninja --quiet -C "$dir" -j "$j" ;;
	make) tm "$tag" make -C "$dir" -j "$j" -s ;;
	floor-sh) tm "$tag" "$BUILD/bench/spawn_floor" "$n" "$j" /bin/sh -c true ;;
	floor-true) tm "$tag" "$BUILD/bench/spawn_floor" "$n" "$j" /bin/true ;;
	esac
}

# ratio A B: A/B with two decimals; ovh A B N: (A-B)/N in microseconds;
# bpt KB N: bytes per task. Each prints "-" when a figure is missing.
ratio() { if [ "$1" = - ] || [ "$2" = - ]; then echo -; else div "$1" "$2"; fi; }
ovh() {
	if [ "$1" = - ] || [ "$2" = - ]; then echo -; return; fi
	awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf("%.0f", (a - b) * 1e6 / n) }'
}
bpt() { if [ "$1" = 0 ]; then echo -; else div $(($1 * 1024)) "$2" 0; fi; }

FMT='%-7s %6s %2s | %7s %7s %7s %8s %8s | %6s %6s %6s %6s | %6s %6s %6s\n'
CPU_ROWS=''
# config SHAPE N J LIST: prints the wall-time row, adds a row to CPU_ROWS.
config() {
	local shape=$1 n=$2 j=$3 dir r
	local -A s k c
	dir=$(gen "$shape" "$n")
	for who in dagrun ninja make floor-sh floor-true; do
		r=$(run_one "$who" "$shape" "$n" "$j" "$dir" "$4")
		read -r "s[$who]" "k[$who]" "c[$who]" <<<"$r"
	done
	# shellcheck disable=SC2059
	printf "$FMT" "$shape" "$n" "$j" "${s[dagrun]}" "${s[ninja]}" "${s[make]}" \
		"${s[floor-sh]}" "${s[floor-true]}" \
		"$(ratio "${s[dagrun]}" "${s[ninja]}")" "$(ratio "${s[dagrun]}" "${s[floor-true]}")" \
		"$(ratio "${s[ninja]}" "${s[floor-sh]}")" "$(ratio "${s[make]}" "${s[floor-true]}")" \
		"$(bpt "${k[dagrun]}" "$n")" "$(bpt "${k[ninja]}" "$n")" "$(bpt "${k[make]}" "$n")"
	# shellcheck disable=SC2059
	CPU_ROWS+=$(printf "$FMT" "$shape" "$n" "$j" "${c[dagrun]}" "${c[ninja]}" "${c[make]}" \
		"${c[floor-sh]}" "${c[floor-true]}" \
		"$(ratio "${c[dagrun]}" "${c[ninja]}")" "$(ratio "${c[dagrun]}" "${c[floor-true]}")" \
		"$(ratio "${c[ninja]}" "${c[floor-sh]}")" "$(ratio "${c[make]}" "${c[floor-true]}")" \
		"$(ovh "${c[dagrun]}" "${c[floor-true]}" "$n")" \
		"$(ovh "${c[ninja]}" "${c[floor-sh]}" "$n")" \
		"$(ovh "${c[make]}" "${c[floor-true]}" "$n")")$'\n'
}

build
machine
echo "# wall seconds; ratios: dagrun/ninja, dagrun/floor-true, ninja/floor-sh, make/floor-true; peak RSS bytes/task"
# shellcheck disable=SC2059
printf "$FMT" shape tasks -j dagrun ninja make floor-sh floor-tr d/ninja d/flr n/flr m/flr dagrun ninja make
for c in $SMALL_CONFIGS; do
	config "${c%:*}" "$SMALL" "${c#*:}" "$WHO"
done
for c in $BIG_CONFIGS; do
	config "${c%:*}" "$BIG" "${c#*:}" "$BIG_WHO"
done
echo "# CPU seconds (user + system, runner and its children): less sensitive"
echo "# than wall time to other load on the machine; same ratios; last three:"
echo "# runner CPU minus its floor's, in us/task (dagrun, ninja, make)"
# shellcheck disable=SC2059
printf "$FMT" shape tasks -j dagrun ninja make floor-sh floor-tr d/ninja d/flr n/flr m/flr dagrun ninja make
printf '%s' "$CPU_ROWS"
if [ -n "$BIG" ]; then
	dir=$(gen layered "$BIG")
	rm -f "$dir/.ninja_log"
	r=$(tm dry-dagrun "$DAGRUN" run --dry-run --no-state "$dir/workflow.yaml")
	read -r _ dk _ <<<"$r"
	r=$(tm dry-ninja ninja -n --quiet -C "$dir")
	read -r _ nk _ <<<"$r"
	r=$(tm dry-make make -n -C "$dir")
	read -r _ mk _ <<<"$r"
	echo "# spawning nothing, layered $BIG: peak RSS bytes/task of" \
	     "dagrun --dry-run $(bpt "$dk" "$BIG"), ninja -n $(bpt "$nk" "$BIG")," \
	     "make -n $(bpt "$mk" "$BIG")"
fi
if [ -n "$FAKE" ]; then
	dir=$(gen layered "$FAKE")
	echo "# sched_fake, layered $FAKE: engine only, fake executor, -j 8"
	"$BUILD/bench/sched_fake" "$dir/workflow.yaml" 8
	rm -f "$dir/.ninja_log"
	r=$(tm ninja-n-"$FAKE" ninja -n --quiet -C "$dir")
	read -r s k _ <<<"$r"
	echo "# ninja -n, same DAG (parse + plan): $s s ($(div "$s"e6 "$FAKE" 2) us/task)," \
	     "peak RSS $(mb "$k") MB ($(bpt "$k" "$FAKE") B/task)"
fi
