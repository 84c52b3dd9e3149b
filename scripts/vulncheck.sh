#!/usr/bin/env bash
# vulncheck.sh: govulncheck over every module of the workspace, in one run, against the Go
# vulnerability database taken from the Go module proxy. Fails when code of ours can reach a
# known-vulnerable function (govulncheck's default symbol scan).
#
# Why this shape: vuln.go.dev is not reachable from our machines nor CI; the module proxy is.
# The module golang.org/x/vulndb carries the database's OSV entries in data/osv/, and
# govulncheck reads a directory of OSV files given as -db file://DIR (it builds the index in
# memory). So the database is a module download like any other, pinned by version.
#
# One run over all modules, from inside the workspace, checks the versions go.work selects,
# which are the versions the Dockerfiles build with. It takes under half the time of one run
# per module (the cloud SDKs are type-checked once), and it is the more conservative of the
# two: a larger program only adds call edges, so a clean joint run means clean per-module runs.
#
# Usage: scripts/vulncheck.sh [module dir ...]   (default: every module that go.work uses)
#        VULNCHECK_MODE=binary scripts/vulncheck.sh bin/ingest bin/process ...
#                        scans built binaries instead (seconds, not minutes): the symbols the
#                        linker kept, which is what `make test` checks on every run
# Env:   GOVULNCHECK     the govulncheck binary (default: govulncheck on PATH)
#        VULNDB_VERSION  the version of golang.org/x/vulndb (default: the one pinned below;
#                        "master" asks the proxy for the newest it serves)
#        VULNCHECK_FLAGS extra govulncheck flags, e.g. "-show verbose" to also list the
#                        vulnerabilities in imported packages our code does not call
# Exit:  0 nothing reachable; 3 govulncheck found reachable vulnerabilities; other: could not run.
set -euo pipefail

# The newest golang.org/x/vulndb our module proxy serves (its commit of 2026-08-13). Raise it
# when the proxy serves a newer one: VULNDB_VERSION=master scripts/vulncheck.sh shows which.
readonly pinned_vulndb=v0.0.0-20260813214354-9de686e1fb00

cd "$(dirname "$0")/.."
root=$PWD
govulncheck=${GOVULNCHECK:-govulncheck}
vulndb_version=${VULNDB_VERSION:-$pinned_vulndb}
start=$SECONDS

# The database: a module zip from the proxy, outside the workspace (as for any tool).
GOWORK=off go mod download golang.org/x/vulndb@"$vulndb_version"
IFS='|' read -r db_version db_date db_dir < <(GOWORK=off go list -m \
	-f '{{.Version}}|{{.Time.Format "2006-01-02"}}|{{.Dir}}' golang.org/x/vulndb@"$vulndb_version")
osv=$db_dir/data/osv
if [ ! -d "$osv" ]; then
	echo "vulncheck: golang.org/x/vulndb@$db_version has no data/osv directory" >&2
	exit 1
fi
age_days=$(( ($(date -u +%s) - $(date -u -d "$db_date" +%s)) / 86400 ))
echo "vulncheck: database golang.org/x/vulndb@$db_version, $(find "$osv" -name 'GO-*.json' | wc -l) entries," \
	"as of $db_date ($age_days days old); advisories published later are not checked"

if [ "${VULNCHECK_MODE:-source}" = binary ]; then
	rc=0
	for bin in "$@"; do
		echo "vulncheck: binary $bin"
		# shellcheck disable=SC2086 # VULNCHECK_FLAGS is a list of flags
		"$govulncheck" -mode binary -db "file://$osv" ${VULNCHECK_FLAGS:-} "$bin" || { r=$?; [ "$rc" = 3 ] || rc=$r; }
	done
	echo "vulncheck: exit $rc after $((SECONDS - start)) s"
	exit "$rc"
fi

# The modules: the arguments, or every module go.work uses.
if [ $# -gt 0 ]; then
	dirs=()
	for m in "$@"; do dirs+=("$root/$m"); done
else
	mapfile -t dirs < <(go list -m -f '{{.Dir}}')
fi
patterns=()
for d in "${dirs[@]}"; do patterns+=("$d/..."); done
echo "vulncheck: $("$govulncheck" -db "file://$osv" -version | grep -E "^Scanner:") over ${dirs[*]#"$root"/}"

# govulncheck wants to start inside a module; go.work makes the others visible from there.
rc=0
# shellcheck disable=SC2086 # VULNCHECK_FLAGS is a list of flags
"$govulncheck" -C "${dirs[0]}" -db "file://$osv" ${VULNCHECK_FLAGS:-} "${patterns[@]}" || rc=$?
echo "vulncheck: exit $rc after $((SECONDS - start)) s"
exit "$rc"
