#!/usr/bin/env bash
# layering.sh: the modules of src/ include only modules below them.
#
# The table below is the allowed direction of dependencies (docs/
# architecture.md explains it): a module may include its own headers,
# include/dagrun.h, and the headers of the modules listed after it, nothing
# else. The script fails, naming the file and the line, on any other
# `#include "MODULE/..."`; on a folder of src/ the table does not know; and
# if the table itself has a cycle. Run as a test (suite 'layering').
set -euo pipefail
SRC=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}/src

# module: the modules it may include (lowest first).
TABLE='
util:
model: util
load: model util
graph: model util
expr: model util
exec: expr model util
sched: store exec graph expr model util
kinds: sched exec load graph expr model util
engine: kinds sched store exec graph expr model util
workflow: kinds load graph expr model util
obs: kinds util
store: util
report: store graph model util
serve: report store graph model util
cli: serve report workflow engine obs kinds sched store exec load graph expr model util
'

declare -A allowed
edges=''
while IFS=: read -r mod deps; do
	[ -n "$mod" ] || continue
	allowed[$mod]=" $mod $deps "
	for d in $deps; do
		edges+="$d $mod"$'\n'
	done
	edges+="$mod $mod"$'\n'
done <<<"$TABLE"

fail=0
# The table is a partial order: tsort finds no cycle.
if ! printf '%s' "$edges" | tsort >/dev/null 2>/tmp/layering.$$; then
	echo "layering.sh: the table has a cycle:" >&2
	cat /tmp/layering.$$ >&2
	fail=1
fi
rm -f /tmp/layering.$$

for dir in "$SRC"/*/; do
	mod=$(basename "$dir")
	if [ -z "${allowed[$mod]+x}" ]; then
		echo "layering.sh: src/$mod/ is not in the table of tests/layering.sh" >&2
		fail=1
		continue
	fi
	for f in "$dir"*.c "$dir"*.h; do
		[ -e "$f" ] || continue
		# #include "X/file.h": X must be allowed; #include "file.h" is
		# the file's own folder (checked to exist there).
		while IFS=: read -r line inc; do
			case $inc in
			dagrun.h) continue ;;
			*/*) dep=${inc%%/*} ;;
			*)
				if [ ! -e "$dir$inc" ]; then
					echo "src/$mod/$(basename "$f"):$line: includes \"$inc\", not a file of src/$mod/" >&2
					fail=1
				fi
				continue ;;
			esac
			case ${allowed[$mod]} in
			*" $dep "*) ;;
			*)
				echo "src/$mod/$(basename "$f"):$line: src/$mod/ may not include \"$inc\" (src/$dep/ is not below it; see tests/layering.sh)" >&2
				fail=1 ;;
			esac
		done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
			 sed 's/^\([0-9]*\):[^"]*"\([^"]*\)".*/\1:\2/')
	done
done
[ $fail -eq 0 ] && echo "layering.sh: every #include of src/ goes down the table"
exit $fail
