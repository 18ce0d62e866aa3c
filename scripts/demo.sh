#!/usr/bin/env bash
# pgward demo: archive a scratch PostgreSQL 15 cluster into a local,
# encrypted pgward repository, take a base backup, restore it elsewhere with
# restore_command = pgward wal-fetch, and show that the rows came back.
# Everything lives in a temporary directory that is removed at the end.
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
cleanup() {
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

say "Create a local repository and a scratch PostgreSQL 15 cluster that archives into it"
repo="file://$demo/repo"
as_pg mkdir -m 700 "$demo/repo"
as_pg initdb -D "$demo/primary" -A trust -U postgres --no-sync >/dev/null
cat >>"$demo/primary/postgresql.conf" <<CONF
port = $primary_port
listen_addresses = ''
unix_socket_directories = '$demo'
wal_level = replica
archive_mode = on
archive_command = '$demo/pgward --repo $repo --recipient $recipient wal-push %p'
CONF
as_pg pg_ctl -D "$demo/primary" -l "$demo/primary.log" -w start >/dev/null
note "archive_command = '$demo/pgward --repo $repo --recipient age1… wal-push %p'"

say "Write data with pgbench"
as_pg pgbench -h "$demo" -p "$primary_port" -U postgres -i -s 2 -q postgres 2>&1 | tail -1 | sed 's/^/   /'

say "Take a base backup (pg_basebackup, until pgward has its own)"
as_pg pg_basebackup -h "$demo" -p "$primary_port" -U postgres -D "$demo/restored" -X none -c fast 2>&1 | grep -v '^NOTICE' || true
note "base backup in $demo/restored"

say "Keep writing after the backup: 10 seconds of pgbench transactions"
as_pg pgbench -h "$demo" -p "$primary_port" -U postgres -c 2 -T 10 -n postgres 2>&1 | grep -E '^(number of transactions actually processed|tps)' | sed 's/^/   /'
want_history=$(psql_p "$primary_port" "SELECT count(*) FROM pgbench_history")
want_balance=$(psql_p "$primary_port" "SELECT sum(abalance) FROM pgbench_accounts")
note "the primary holds $want_history pgbench_history rows, sum(abalance) = $want_balance"

say "Close the current WAL segment and wait until pgward has archived it"
last=$(psql_p "$primary_port" "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 1 600); do
	archived=$(psql_p "$primary_port" "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
	[[ "$archived" > "$last" || "$archived" == "$last" ]] && break
	sleep 0.1
done
note "last archived segment: $archived"
segments=$(find "$demo/repo" -regextype posix-extended -regex '.*/[0-9A-F]{24}\.zst\.age' | wc -l)
note "repository: $segments sealed segments ($((segments * 16)) MiB of WAL) take $(du -sh "$demo/repo" | cut -f1)"
as_pg pg_ctl -D "$demo/primary" -m fast -w stop >/dev/null
note "primary stopped: from here on, only the repository has the data"

say "Restore: recover the base backup with restore_command = pgward wal-fetch"
touch "$demo/restored/recovery.signal"
[ "$(id -u)" -eq 0 ] && chown postgres: "$demo/restored/recovery.signal"
cat >>"$demo/restored/postgresql.conf" <<CONF
port = $restored_port
archive_mode = off
restore_command = '$demo/pgward --repo $repo --identity-file $demo/key.txt wal-fetch %f %p'
recovery_target_action = promote
CONF
as_pg pg_ctl -D "$demo/restored" -l "$demo/restored.log" -w -t 300 start >/dev/null
for _ in $(seq 1 3000); do
	[ "$(psql_p "$restored_port" "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ] && break
	sleep 0.1
done
note "$(grep -c 'restored log file' "$demo/restored.log") WAL files replayed from the repository"

say "Check that the rows came back"
got_history=$(psql_p "$restored_port" "SELECT count(*) FROM pgbench_history")
got_balance=$(psql_p "$restored_port" "SELECT sum(abalance) FROM pgbench_accounts")
note "restored: $got_history pgbench_history rows, sum(abalance) = $got_balance"
if [ "$got_history" = "$want_history" ] && [ "$got_balance" = "$want_balance" ]; then
	printf '\n\033[1;32mOK: every committed transaction came back from the encrypted repository.\033[0m\n'
else
	printf '\n\033[1;31mFAILED: expected %s rows / %s, got %s / %s\033[0m\n' "$want_history" "$want_balance" "$got_history" "$got_balance"
	exit 1
fi
say "Clean up"
