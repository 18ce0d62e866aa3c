#!/usr/bin/env bash
# Checks the Debian package make package built: scripts/package-check.sh DEB
set -euo pipefail
deb=${1:?usage: package-check.sh DEB}
fail() { echo "package-check: $*" >&2; exit 1; }

listing=$(dpkg-deb -c "$deb")
for f in ./usr/bin/pgward ./usr/share/man/man1/pgward.1.gz \
  ./usr/share/bash-completion/completions/pgward ./usr/share/zsh/vendor-completions/_pgward \
  ./lib/systemd/system/pgward-stream.service ./lib/systemd/system/pgward-stream@.service \
  ./etc/pgward/pgward.yaml.example ./etc/pgward/conf.d/ ./usr/share/doc/pgward/operations.md; do
  grep -qE " ${f//./\\.}\$" <<<"$listing" || fail "$f is not in $deb"
done
grep -qE '^-rwxr-xr-x root/root .* \./usr/bin/pgward$' <<<"$listing" || fail "/usr/bin/pgward is not root-owned mode 0755"
dpkg-deb -f "$deb" Package Version Architecture | grep -q '^Package: pgward$' || fail "the control file does not name pgward"
dpkg-deb -f "$deb" Depends | grep -q 'libc6' || fail "the package does not depend on libc6 (the binary links it)"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles 2>/dev/null | grep -qx /etc/pgward/pgward.yaml.example ||
  fail "/etc/pgward/pgward.yaml.example is not a conffile"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"

# The binary runs, and says its version.
"$root/usr/bin/pgward" --version | grep -qE '^pgward version [^ ]+$' || fail "pgward --version"
# The example configuration is one pgward reads (keys and values).
PGWARD_CONFIG= "$root/usr/bin/pgward" --config "$root/etc/pgward/pgward.yaml.example" completion bash >/dev/null \
  || fail "the example configuration does not load"

# The units: systemd-analyze verify, as installed but for the binary's path
# (the unpacked one) and with the package's man page on MANPATH, which
# Documentation=man:pgward(1) must find. A template needs an instance.
units=$root/units
mkdir "$units"
sed "s#/usr/bin/pgward#$root/usr/bin/pgward#" "$root/lib/systemd/system/pgward-stream.service" > "$units/pgward-stream.service"
sed "s#/usr/bin/pgward#$root/usr/bin/pgward#" "$root/lib/systemd/system/pgward-stream@.service" > "$units/pgward-stream@shop.service"
for unit in pgward-stream.service pgward-stream@shop.service; do
  out=$(MANPATH="$root/usr/share/man:" systemd-analyze verify "$units/$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
  [[ -z "$out" ]] || fail "systemd-analyze verify $unit: $out"
done

# The man page renders and documents the commands.
page=$(MANWIDTH=100 man -l "$root/usr/share/man/man1/pgward.1.gz" 2>/dev/null)
for word in NAME SYNOPSIS wal-push wal-fetch stream backup restore check prune retention clusters; do
  grep -q -- "$word" <<<"$page" || fail "the man page lacks $word"
done

# The bash completion loads and completes commands.
got=$(PATH="$root/usr/bin:$PATH" bash -c '
  source "$1"
  COMP_WORDS=(pgward ba); COMP_CWORD=1; _pgward; echo "${COMPREPLY[*]}"
  COMP_WORDS=(pgward backup l); COMP_CWORD=2; _pgward; echo "${COMPREPLY[*]}"' _ "$root/usr/share/bash-completion/completions/pgward")
[[ "$got" == $'backup\nlist' ]] || fail "bash completion gave: $got"
bash -n "$root/usr/share/bash-completion/completions/pgward" || fail "bash completion does not parse"

echo "package-check: $(basename "$deb") ok ($(wc -l <<<"$listing") entries)"
