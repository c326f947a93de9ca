#!/usr/bin/env bash
# The fault suite (make faults): see the Makefile target and the FAULTS
# section of BENCHMARKS.md. Prints the test verdicts and each case's FAULT
# line; the full log (every replica's log lines) goes to faults.log.
set -euo pipefail
cd "$(dirname "$0")/.."
log=${FAULTS_LOG:-faults.log}
status=0
go test -tags faults -count=1 -timeout 30m -v -run 'TestFaults|TestBinaryFaults|TestBinaryScaleFaults|TestClusterFailoverKeepsWrites|TestSentinelFailoverKeepsWrites|TestDialFindsTheReplicaOfAKilledMaster' ./app/ ./cmd/replywatch/ ./internal/testenv/ ./state/ >"$log" 2>&1 || status=$?
grep -E '^(=== RUN|\s*--- (PASS|FAIL|SKIP)|\s+\S+_test\.go:[0-9]+: FAULT|ok|FAIL|PASS)' "$log" || true
if [ "$status" -ne 0 ]; then
	echo "fault suite failed; the full log is in $log" >&2
fi
exit "$status"
