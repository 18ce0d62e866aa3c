#!/usr/bin/env bash
# pgward demo, with pgward alone: a scratch PostgreSQL 15 cluster streams its
# WAL through the pgward sidecar into a local, encrypted repository; pgward
# takes a base backup; rows are written, a time is noted, more rows are
# written; pgward restores the cluster as it was at that time and the rows
# are shown. Everything lives in a temporary directory removed at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
pgbin=${PGWARD_PG_BINDIR:-/usr/lib/postgresql/15/bin}
step=0
say() { step=$((step + 1)); printf '\n\033[1m%d. %s\033[0m\n' "$step" "$*"; }
note() { printf '   %s\n' "$*"; }

# PostgreSQL refuses to run as root: run the clusters as 'postgres' then.
if [ "$(id -u)" -eq 0 ]; then
	as_pg() { runuser -u postgres -- env PATH="$pgbin:$PATH" "$@"; }
else
	as_pg() { env PATH="$pgbin:$PATH" "$@"; }
fi

demo=$(mktemp -d /tmp/pgward-demo.XXXXXX)
chmod 755 "$demo"
[ "$(id -u)" -eq 0 ] && chown postgres: "$demo"
primary_port=$((20000 + RANDOM % 20000))
restored_port=$((primary_port + 1))
sidecar=
cleanup() {
	[ -n "$sidecar" ] && kill "$sidecar" 2>/dev/null || true
	as_pg pg_ctl -D "$demo/restored" -m immediate stop >/dev/null 2>&1 || true
	as_pg pg_ctl -D "$demo/primary" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$demo"
}
trap cleanup EXIT
psql_p() { as_pg psql -X -q -h "$demo" -p "$1" -U postgres -d postgres -Atc "$2"; }

say "Build pgward and copy it where the postgres user can run it"
install -m 755 "$here/bin/pgward" "$demo/pgward"
note "$("$demo/pgward" --version)"

say "Create an encryption key: the identity stays on restore hosts, the recipient goes to the database host"
recipient=$(as_pg "$demo/pgward" keys generate --output "$demo/key.txt")
note "identity file: $demo/key.txt (mode $(stat -c %a "$demo/key.txt"))"
note "recipient:     $recipient"
say "Create a signing key: hosts that write sign every object, restore hosts accept only what that key signed"
signer=$(as_pg "$demo/pgward" keys generate --signing --output "$demo/signing.key")
note "signing key:   $demo/signing.key (mode $(stat -c %a "$demo/signing.key"); the writers' secret)"
note "trusted signer: $signer"
as_pg mkdir -m 700 "$demo/repo"
# One host plays both parts here; on a real system the database host holds
# recipient + signing-key-file, the restore host identity-file + trusted-signer.
cat >"$demo/pgward.yaml" <<CONF
repo: file://$demo/repo
recipient: $recipient
signing-key-file: $demo/signing.key
identity-file: $demo/key.txt
trusted-signer: $signer
CONF
chmod 644 "$demo/pgward.yaml"
pgward() { as_pg "$demo/pgward" --config "$demo/pgward.yaml" "$@"; }

say "Start a scratch PostgreSQL 15 cluster"
as_pg initdb -D "$demo/primary" -A trust -U postgres --no-sync >/dev/null
cat >>"$demo/primary/postgresql.conf" <<CONF
port = $primary_port
listen_addresses = ''
unix_socket_directories = '$demo'
wal_level = replica
max_wal_senders = 5
CONF
as_pg pg_ctl -D "$demo/primary" -l "$demo/primary.log" -w start >/dev/null
source="host=$demo port=$primary_port user=postgres"

say "Start the pgward sidecar: WAL streams over a replication slot into the encrypted repository"
pgward stream --source "$source" --spool-dir "$demo/spool" --partial-interval 1s --status-interval 1s --listen "" \
	>"$demo/stream.log" 2>&1 &
sidecar=$!
note "pgward stream --source '$source' (the segment being written is stored every second)"

say "Write data with pgbench"
as_pg pgbench -h "$demo" -p "$primary_port" -U postgres -i -s 2 -q postgres 2>&1 | tail -1 | sed 's/^/   /'

say "Take a base backup with pgward (on a real system: on the replica)"
pgward backup --source "$source" --checkpoint fast 2>/dev/null | sed 's/^/   /'
pgward backup list | sed 's/^/   /'

say "Write for 5 seconds, then note the time"
as_pg pgbench -h "$demo" -p "$primary_port" -U postgres -c 2 -T 5 -n postgres >/dev/null 2>&1
target=$(psql_p "$primary_port" "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00')")
want_history=$(psql_p "$primary_port" "SELECT count(*) FROM pgbench_history")
want_balance=$(psql_p "$primary_port" "SELECT sum(abalance) FROM pgbench_accounts")
note "at $target the database holds $want_history pgbench_history rows, sum(abalance) = $want_balance"

say "Write for 5 more seconds: the mistake we will undo"
as_pg pgbench -h "$demo" -p "$primary_port" -U postgres -c 2 -T 5 -n postgres >/dev/null 2>&1
note "now: $(psql_p "$primary_port" "SELECT count(*) FROM pgbench_history") rows"

say "Wait until the sidecar has stored the newest WAL, then lose the server"
end=$(psql_p "$primary_port" "SELECT pg_current_wal_lsn()")
for _ in $(seq 1 300); do
	[ "$(psql_p "$primary_port" "SELECT coalesce(bool_or(flush_lsn >= '$end'), false) FROM pg_stat_replication WHERE application_name = 'pgward'")" = t ] && break
	sleep 0.1
done
note "stored up to $end"
as_pg pg_ctl -D "$demo/primary" -m immediate stop >/dev/null
kill "$sidecar"; wait "$sidecar" 2>/dev/null || true; sidecar=
note "primary and sidecar stopped: from here on, only the repository has the data"

say "Restore the cluster as it was at $target"
pgward restore --pgdata "$demo/restored" --to-time "$target" --start --port "$restored_port" 2>/dev/null | sed 's/^/   /'

say "Read every stored object back: each must be signed by the trusted key"
pgward verify 2>/dev/null | sed 's/^/   /'

say "Check that the rows are as they were at $target"
got_history=$(psql_p "$restored_port" "SELECT count(*) FROM pgbench_history")
got_balance=$(psql_p "$restored_port" "SELECT sum(abalance) FROM pgbench_accounts")
note "restored: $got_history pgbench_history rows, sum(abalance) = $got_balance"
if [ "$got_history" = "$want_history" ] && [ "$got_balance" = "$want_balance" ]; then
	printf '\n\033[1;32mOK: the database came back exactly as it was at %s.\033[0m\n' "$target"
else
	printf '\n\033[1;31mFAILED: expected %s rows / %s, got %s / %s\033[0m\n' "$want_history" "$want_balance" "$got_history" "$got_balance"
	exit 1
fi
say "Clean up"
