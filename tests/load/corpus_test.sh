#!/usr/bin/env bash
# corpus_test.sh: `dagrun validate` end to end over tests/corpus.
#
# Every file in tests/corpus/valid (and examples/*.yaml) must validate with
# exit status 0. Every tests/corpus/invalid/NAME.{yaml,json} must fail with
# exit status 2, and the first line of its diagnostics must contain the
# text of NAME.expect (`NAME.yaml:LINE:COL: error: MESSAGE`). Files are
# validated from their own directory so messages carry bare file names.
# Environment: DAGRUN (the CLI), SRCDIR (the source tree), as set by meson.
set -u
: "${DAGRUN:?set DAGRUN to the dagrun binary}"
: "${SRCDIR:?set SRCDIR to the source tree}"
corpus=$SRCDIR/tests/corpus
fails=0 count=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

check_valid() {
	local dir=$1 file=$2 out
	count=$((count + 1))
	out=$(cd "$dir" && "$DAGRUN" validate --color=never "$file" 2>&1)
	local rc=$?
	[ "$rc" -eq 0 ] || fail "$dir/$file: exit $rc, want 0"$'\n'"$out"
}

check_invalid() {
	local file=$1 name=${1%.*} out rc want first
	count=$((count + 1))
	if [ ! -f "$corpus/invalid/$name.expect" ]; then
		fail "$file: no $name.expect"
		return
	fi
	want=$(head -n 1 "$corpus/invalid/$name.expect")
	out=$(cd "$corpus/invalid" && "$DAGRUN" validate --color=never "$file" 2>&1)
	rc=$?
	first=$(printf '%s\n' "$out" | head -n 1)
	[ "$rc" -eq 2 ] || fail "$file: exit $rc, want 2"$'\n'"$out"
	case $first in
	*"$want"*) ;;
	*) fail "$file: first line"$'\n'"  got:  $first"$'\n'"  want: $want" ;;
	esac
}

for f in "$corpus"/valid/*.yaml "$corpus"/valid/*.json; do
	[ -e "$f" ] && check_valid "$corpus/valid" "$(basename "$f")"
done
for f in "$SRCDIR"/examples/*.yaml; do
	[ -e "$f" ] && check_valid "$SRCDIR/examples" "$(basename "$f")"
done
for f in "$corpus"/invalid/*.yaml "$corpus"/invalid/*.json; do
	[ -e "$f" ] && check_invalid "$(basename "$f")"
done
for e in "$corpus"/invalid/*.expect; do
	n=$(basename "$e" .expect)
	[ -e "$corpus/invalid/$n.yaml" ] || [ -e "$corpus/invalid/$n.json" ] ||
		fail "$e: no matching workflow file"
done

echo "corpus: $count files, $fails failures"
[ "$count" -gt 0 ] && [ "$fails" -eq 0 ]
