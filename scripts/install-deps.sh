#!/usr/bin/env bash
# Installs what pgward's demo, tests and benchmarks need on a Debian machine,
# skipping whatever is already there:
#   - PostgreSQL 15 server binaries, pgbench, and the age and zstd CLIs
#     (Debian packages; no cluster is created or started);
#   - MinIO, built from its Go module at a pinned version into a cache;
#   - the Go modules of this project.
#   - for benchmarks, pgBackRest (Debian package) to compare against.
# Usage: scripts/install-deps.sh [pg|all|bench]
set -euo pipefail

what=${1:-all}
cache=${PGWARD_CACHE:-$HOME/.cache/pgward}
minio_version=v0.0.0-20260212201848-7aac2a2c5b7c

say() { printf '==> %s\n' "$*" >&2; }

sudo_if_needed() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

need_pkgs=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_pkgs+=(postgresql-15)
command -v age >/dev/null || need_pkgs+=(age)
command -v zstd >/dev/null || need_pkgs+=(zstd)
if [ "$what" = all ]; then
	# make package-check: the units, the man page, the package.
	command -v systemd-analyze >/dev/null || need_pkgs+=(systemd)
	command -v man >/dev/null || need_pkgs+=(man-db)
	command -v dpkg-deb >/dev/null || need_pkgs+=(dpkg)
fi
if [ "$what" = bench ]; then
	command -v pgbackrest >/dev/null || need_pkgs+=(pgbackrest)
	[ -x /usr/bin/time ] || need_pkgs+=(time)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
	say "installing Debian packages: ${need_pkgs[*]}"
	# Debian would otherwise create and start a 'main' cluster on port 5432.
	if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
		sudo_if_needed mkdir -p /etc/postgresql-common
		echo 'create_main_cluster = false' | sudo_if_needed tee /etc/postgresql-common/createcluster.conf >/dev/null
	fi
	export DEBIAN_FRONTEND=noninteractive
	sudo_if_needed apt-get install -y --no-install-recommends "${need_pkgs[@]}" ||
		{ sudo_if_needed apt-get update && sudo_if_needed apt-get install -y --no-install-recommends "${need_pkgs[@]}"; }
fi
# postgresql-15 provides pgbench on Debian 12.
[ -x /usr/lib/postgresql/15/bin/pgbench ] || { echo "pgbench not found after install" >&2; exit 1; }
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
	say "creating the postgres OS user (PostgreSQL refuses to run as root)"
	useradd --system --home-dir /var/lib/postgresql --create-home --shell /bin/bash postgres
fi

[ "$what" = pg ] && exit 0

if [ "$(cat "$cache/bin/minio.version" 2>/dev/null)" != "$minio_version" ] || [ ! -x "$cache/bin/minio" ]; then
	say "building MinIO $minio_version into $cache/bin (once; takes a few minutes)"
	mkdir -p "$cache/bin"
	GOBIN="$cache/bin" GOFLAGS=-mod=mod go install "github.com/minio/minio@$minio_version"
	echo "$minio_version" >"$cache/bin/minio.version"
fi

go mod download
