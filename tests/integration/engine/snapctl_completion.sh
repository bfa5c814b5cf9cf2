#!/bin/bash
# tests/integration/engine/snapctl_completion.sh — the bash completion
# (tools/snapctl.bash-completion) in a real bash: sourced with nothing from
# the bash-completion package, its function called with COMP_WORDS and
# COMP_CWORD set as bash sets them.
#
#   snapctl res<TAB>, ren<TAB>      -> restore, rename
#   snapctl --db DB restore <TAB>   -> the store's snapshot names (and latest)
#   snapctl --db=DB show <TAB>      -> the names ("=" is its own word)
#   snapctl --db DB diff NAME <TAB> -> the names and live
#   snapctl prune --<TAB>           -> prune's options, not check's
#   snapctl --replica file:///R show|verify|export|restore <TAB>
#                                   -> the replica's snapshot names (not
#      the store's), with SNAPFS_PASSPHRASE or --passphrase-file FILE for
#      an encrypted one; without its passphrase none, and nothing printed
# and the hidden "__names" command it uses lists exactly the snapshots and
# is not in --help.  bash splits file:///R at the colon (COMP_WORDBREAKS):
# the words given here are split as bash splits them.
. "$(dirname "$0")/../lib.sh"

COMPLETION=$(cd "$(dirname "$0")/../../../tools" && pwd)/snapctl.bash-completion
if [ ! -f "$COMPLETION" ]; then
	echo "SKIP: no completion file at $COMPLETION"
	exit 77
fi

DB=$T/app.db
make_db "$DB" 50
sc --db "$DB" create --label one
require "create a first snapshot" rc_is 0
S1=$OUT
sc --db "$DB" create --label two
require "create a second snapshot" rc_is 0
S2=$OUT

# complete WORD... — COMPREPLY (one a line) for the command line WORD...,
# the cursor on the last word (give "" for an empty one), in a fresh bash.
complete_words() {
	bash --norc --noprofile -c '
		. "$1"; shift
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		_snapctl
		printf "%s\n" "${COMPREPLY[@]}"' bash "$COMPLETION" "$@" 2>"$T/.cerr"
}
has_line() { printf '%s\n' "$1" | grep -qxF -- "$2"; }

check "the completion file is valid bash" bash -n "$COMPLETION"
R=$(bash --norc --noprofile -c '. "$1"; complete -p snapctl' bash "$COMPLETION")
check "it registers _snapctl for snapctl" same "$R" "complete -F _snapctl snapctl"

R=$(complete_words "$SNAPCTL" res)
check "snapctl res<TAB> completes to restore" same "$R" "restore"
R=$(complete_words "$SNAPCTL" ren)
check "snapctl ren<TAB> completes to rename" same "$R" "rename"
R=$(complete_words "$SNAPCTL" --db "$DB" replicate "")
check "replicate <TAB> offers the URL schemes" same "$R" "s3://
file:///"
R=$(complete_words "$SNAPCTL" --replica s)
check "--replica s<TAB> completes to s3://" same "$R" "s3://"
R=$(complete_words "$SNAPCTL" "")
check "snapctl <TAB> lists the commands" \
	eval 'has_line "$R" prune && has_line "$R" status && has_line "$R" diff && ! has_line "$R" __names'

R=$(complete_words "$SNAPCTL" --db "$DB" restore "")
check "snapctl --db DB restore <TAB> lists both snapshot names and latest" \
	eval 'has_line "$R" "$S1" && has_line "$R" "$S2" && has_line "$R" latest'
R=$(complete_words "$SNAPCTL" restore --db "$DB" "${S2:0:12}")
check "options after the command count too; a prefix narrows" \
	eval 'has_line "$R" "$S2" && ! has_line "$R" latest'
R=$(complete_words "$SNAPCTL" --db = "$DB" show "")
check "--db=DB (split at =) is used for the names" \
	eval 'has_line "$R" "$S1" && has_line "$R" "$S2"'
R=$(complete_words "$SNAPCTL" --store "$DB.snapfs" delete "")
check "--store DIR is used for the names" \
	eval 'has_line "$R" "$S1" && has_line "$R" "$S2"'
R=$(complete_words "$SNAPCTL" --db "$DB" rename "")
check "rename's first argument: the snapshot names" \
	eval 'has_line "$R" "$S1" && has_line "$R" "$S2"'
R=$(complete_words "$SNAPCTL" --db "$DB" diff "$S1" "")
check "diff's second argument: names, live and current" \
	eval 'has_line "$R" "$S2" && has_line "$R" live && has_line "$R" current'
R=$(complete_words "$SNAPCTL" --db "$T/none.db" restore "")
check "no store: no names, no error on the terminal" \
	eval '! has_line "$R" "$S1" && [ ! -s "$T/.cerr" ]'

R=$(complete_words "$SNAPCTL" prune --)
check "prune --<TAB> offers --keep, --max-size, --dry-run and not --recover" \
	eval 'has_line "$R" --keep && has_line "$R" --max-size && has_line "$R" --dry-run && ! has_line "$R" --recover'
R=$(complete_words "$SNAPCTL" status --)
check "status --<TAB> offers --prometheus, --warn-age and --crit-age" \
	eval 'has_line "$R" --prometheus && has_line "$R" --warn-age && has_line "$R" --crit-age'
R=$(complete_words "$SNAPCTL" restore --)
check "restore --<TAB> offers --dry-run and --table" \
	eval 'has_line "$R" --dry-run && has_line "$R" --table'
R=$(complete_words "$SNAPCTL" prune --keep "")
check "--keep <TAB> offers the rules" \
	eval 'has_line "$R" last: && has_line "$R" within:'

# Replicas: a plain one and an encrypted one of S1 and S2; then a third
# snapshot the replicas lack.
unset SNAPFS_PASSPHRASE
PLAIN=$T/plain-replica
CRYPT=$T/crypt-replica
sc --db "$DB" replicate "file://$PLAIN" --no-encryption
require "replicate to a plain replica" rc_is 0
printf 'secret words\n' > "$T/pass"
sc --db "$DB" replicate "file://$CRYPT" --passphrase-file "$T/pass"
require "replicate to an encrypted replica" rc_is 0
sc --db "$DB" create --label three
require "create a third snapshot" rc_is 0
S3=$OUT

R=$(complete_words "$SNAPCTL" --replica file : "//$PLAIN" show "")
check "--replica file:///R show <TAB>: the replica's names and latest" \
	eval 'has_line "$R" "$S1" && has_line "$R" "$S2" && has_line "$R" latest'
check "and not the store's (the replica lacks the third)" \
	eval '! has_line "$R" "$S3" && [ ! -s "$T/.cerr" ]'
R=$(complete_words "$SNAPCTL" --db "$DB" show "")
check "(the store's own names include the third)" has_line "$R" "$S3"
R=$(complete_words "$SNAPCTL" --replica = file : "//$PLAIN" restore "${S2%.db}")
check "--replica=file:///R restore PREFIX<TAB>: the replica's name, no files" \
	eval 'same "$R" "$S2"'
R=$(complete_words "$SNAPCTL" export --replica file : "//$PLAIN" "")
check "--replica after the command: export <TAB> gives the names, not live" \
	eval 'has_line "$R" "$S1" && ! has_line "$R" live'
R=$(complete_words "$SNAPCTL" --replica file : "//$CRYPT" verify "")
check "an encrypted replica without its passphrase: no names, nothing printed" \
	eval '! has_line "$R" "$S1" && [ ! -s "$T/.cerr" ]'
R=$(SNAPFS_PASSPHRASE="secret words" complete_words "$SNAPCTL" --replica file : "//$CRYPT" verify "")
check "with SNAPFS_PASSPHRASE: the encrypted replica's names" \
	eval 'has_line "$R" "$S1" && has_line "$R" "$S2" && ! has_line "$R" "$S3"'
R=$(complete_words "$SNAPCTL" --replica file : "//$CRYPT" --passphrase-file "$T/pass" show "")
check "with --passphrase-file FILE on the line: its names" \
	eval 'has_line "$R" "$S1" && has_line "$R" "$S2" && ! has_line "$R" "$S3"'
R=$(complete_words "$SNAPCTL" --replica file : "//$PLAIN" "")
check "--replica file:///R <TAB>: the commands a replica takes, not create" \
	eval 'has_line "$R" list && has_line "$R" restore && has_line "$R" passphrase && ! has_line "$R" create && ! has_line "$R" diff'
R=$(complete_words "$SNAPCTL" --replica file : "//$PLAIN" passphrase "")
check "passphrase <TAB>: change" same "$R" "change"
R=$(complete_words "$SNAPCTL" --re)
check "--re<TAB> before any command: --replica" same "$R" "--replica"
R=$(complete_words "$SNAPCTL" --replica file : "//$T/none" show "")
check "no replica there: no names, nothing printed" \
	eval '! has_line "$R" "$S1" && [ ! -s "$T/.cerr" ]'

sc --db "$DB" __names
check "__names lists exactly the snapshots, oldest first" \
	same "$OUT" "$(printf '%s\n%s\n%s' "$S1" "$S2" "$S3")"
sc --help
check "__names is not in --help" eval '! out_has __names'
check "--help lists -V, --version" out_has '-V, --version'
R=$(complete_words "$SNAPCTL" --replica file : "//$PLAIN" list --)
check "--replica URL list --<TAB> offers --no-encryption (which it takes)" \
	has_line "$R" --no-encryption
R=$(complete_words "$SNAPCTL" --replica file : "//$PLAIN" restore --)
check "--replica URL restore --<TAB> offers --no-encryption" \
	has_line "$R" --no-encryption

# Every command --help lists is completed, and --help lists every option
# snapctl(1) documents under OPTIONS.
sc --help
HELP=$OUT
R=$(complete_words "$SNAPCTL" "")
for c in $(printf '%s\n' "$HELP" | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z]*\).*/\1/p'); do
	check "snapctl <TAB> offers $c (in --help)" has_line "$R" "$c"
done
for o in --db --store -C --json --help --version --replica --endpoint \
	 --passphrase-file --new-passphrase-file --no-encryption; do
	check "--help lists $o" eval 'printf "%s\n" "$HELP" | grep -q -- "$o\b"'
done

sc -V
check "snapctl -V prints its version and exits 0, as snapfs -V does" \
	eval 'rc_is 0 && out_has "^snapctl [0-9]"'
