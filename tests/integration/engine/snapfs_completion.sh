#!/bin/bash
# tests/integration/engine/snapfs_completion.sh — the bash completion of
# snapfs (fs/snapfs.bash-completion) in a real bash: sourced with nothing
# from the bash-completion package, its function called with COMP_WORDS,
# COMP_CWORD, COMP_LINE and COMP_POINT set as bash sets them (bash splits
# a word at "=" and ":").
#
#   snapfs -o rep<TAB>                 -> replicate=, replicate_every=
#   snapfs -o every=1h,pass<TAB>       -> every=1h,passphrase_file=
#   snapfs -o passphrase_file=DIR/p<TAB> -> the file (after the "=")
#   snapfs -o store=DIR/s<TAB>         -> the directory, not the file
#   snapfs -o replicate=s<TAB>         -> s3://
#   snapfs DIR/a<TAB>                  -> the database file
#   snapfs app.db DIR/m<TAB>           -> the directory only
#   snapfs s<TAB>                      -> s3:// (a replica URL)
#   snapfs -<TAB>                      -> the flags
. "$(dirname "$0")/../lib.sh"

COMPLETION=$(cd "$(dirname "$0")/../../../fs" && pwd)/snapfs.bash-completion
if [ ! -x "${SNAPFS:-}" ]; then
	echo "SKIP: \$SNAPFS is not set to an executable snapfs"
	exit 77
fi

# complete WORD... — COMPREPLY (one a line) for the command line made of
# the shell words WORD... (the last is the one being typed, "" for none),
# split into COMP_WORDS at "=" and ":" as bash does.
complete_words() {
	bash --norc --noprofile -c '
		. "$1"; shift
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		COMP_WORDS=()
		for w in "$@"; do
			while [[ $w =~ ^([^=:]*)([=:])(.*)$ ]]; do
				[ -n "${BASH_REMATCH[1]}" ] && COMP_WORDS+=("${BASH_REMATCH[1]}")
				COMP_WORDS+=("${BASH_REMATCH[2]}")
				w=${BASH_REMATCH[3]}
			done
			COMP_WORDS+=("$w")
		done
		# a word that ended in a break: the cursor is on the empty word
		# after it, as bash has it
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		_snapfs
		printf "%s\n" "${COMPREPLY[@]}"' bash "$COMPLETION" "$@" 2>"$T/.cerr"
}
has_line() { printf '%s\n' "$1" | grep -qxF -- "$2"; }

mkdir "$T/mnt" "$T/store"
: >"$T/app.db"
: >"$T/pass"
: >"$T/sfile"

check "the completion file is valid bash" bash -n "$COMPLETION"
R=$(bash --norc --noprofile -c '. "$1"; complete -p snapfs' bash "$COMPLETION")
check "it registers _snapfs for snapfs" same "$R" "complete -F _snapfs snapfs"

R=$(complete_words "$SNAPFS" -o rep)
check "snapfs -o rep<TAB> offers replicate= and replicate_every=" \
	eval 'has_line "$R" replicate= && has_line "$R" replicate_every= && [ "$(printf "%s\n" "$R" | wc -l)" = 2 ]'
R=$(complete_words "$SNAPFS" -o "")
check "snapfs -o <TAB> lists snapfs's and libfuse's options from snapfs -h" \
	eval 'has_line "$R" store= && has_line "$R" passphrase_file= && has_line "$R" endpoint= && has_line "$R" auto_recover && has_line "$R" allow_other'
R=$(complete_words "$SNAPFS" -o every=1h,pass)
check "after a comma, the next option name (the part after the last break)" \
	same "$R" "1h,passphrase_file="
R=$(complete_words "$SNAPFS" -o "passphrase_file=$T/pa")
check "passphrase_file= completes a file path" same "$R" "$T/pass"
R=$(complete_words "$SNAPFS" -o "store=$T/s")
check "store= completes directories only" same "$R" "$T/store"
R=$(complete_words "$SNAPFS" -o "replicate=s")
check "replicate= offers s3://, handed back after the \"=\"" same "$R" "s3://"
R=$(complete_words "$SNAPFS" "$T/ap")
check "the first argument completes a database file" same "$R" "$T/app.db"
R=$(complete_words "$SNAPFS" -o every=1h "$T/app.db" "$T/m")
check "the second argument completes directories only" same "$R" "$T/mnt"
R=$(complete_words "$SNAPFS" "$T/app.db" "$T/s")
check "the second argument never offers a file" same "$R" "$T/store"
R=$(complete_words "$SNAPFS" s)
check "the first argument offers a replica URL (s3://)" has_line "$R" "s3://"
R=$(complete_words "$SNAPFS" -)
check "a dash completes the flags" \
	eval 'has_line "$R" -o && has_line "$R" -f && has_line "$R" --help'
check "completing wrote nothing on stderr" same "$(cat "$T/.cerr")" ""
