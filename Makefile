# replywatch developer targets. The benchmark suite is described in
# bench/README.md and its recorded results in BENCHMARKS.md.

GO ?= go
DATE := $(shell date -u +%Y-%m-%d)
# Extra rwbench flags, e.g. make bench BENCH_FLAGS="--only e2e,delay --events 3000000".
BENCH_FLAGS ?=
# Micro-benchmark selection and repetitions for benchstat.
MICRO ?= .
COUNT ?= 6

.PHONY: bench bench-smoke bench-micro bench-notify bench-notify-memory bench-sse bench-delivery bench-text test faults soak

# The full suite (about 10 minutes on 2 cores): an in-process kfake broker,
# a redis-server child and simulated traffic. Prints the markdown table and
# writes bench/results/<date>.json with the CPU profiles beside it.
bench:
	$(GO) run ./bench/cmd/rwbench --out bench/results/$(DATE).json $(BENCH_FLAGS)

# The same harness with tiny sizes: checks that every part runs and
# reports, in well under a minute. Numbers from it mean nothing.
bench-smoke:
	$(GO) run ./bench/cmd/rwbench --smoke $(BENCH_FLAGS)

# Go micro-benchmarks of the hot paths, in benchstat's input format:
#   make bench-micro > new.txt
#   go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt
bench-micro:
	$(GO) test -run '^$$' -bench '$(MICRO)' -benchmem -count $(COUNT) ./event/ ./alerting/ ./detectors/ ./pipeline/ ./state/

# The text rules: precision and recall per category on the labelled corpus,
# matching speed on one core, the worker's batch step with and without
# them, and their end-to-end cost over kfake and redis-server (a few
# minutes; BENCHMARKS.md, "Text rules").
bench-text:
	$(GO) test ./text/ -run TestCorpus -v -count 1
	$(GO) test ./text/ -run '^$$' -bench 'Scan' -benchmem -cpu 1 -count 3
	$(GO) test ./pipeline/ -run '^$$' -bench 'BatchBuild500' -benchmem -cpu 1 -count 3
	REPLYWATCH_TEXT_COST=1 $(GO) test ./app/ -run TestTextRulesCost -v -count 1 -timeout 120m

# The notifier over kfake and redis-server: alert records/s routed and
# accepted by a receiver that answers at once, and emitted_at -> accepted
# with a receiver answering in 50 ms (BENCHMARKS.md, "The notifier").
bench-notify:
	$(GO) test -run '^$$' -bench 'Notifier' -benchtime 1x -count 3 ./alerting/notify/

# The heap a receiver's lane holds after a million alert records, all
# delivered: its memory of what it queued (BENCHMARKS.md, "The notifier's
# memory on a bad day"). About 10 s.
bench-notify-memory:
	RW_NOTIFY_MEMBENCH=1 $(GO) test -run 'TestLaneMemoryHeap' -count 1 -v ./alerting/notify/

# The processor replaying the simulated day with the notifier off and on,
# with 500 SSE clients of real scopes (480 agents' pages, 20 walls) and
# with 500 each taking every record (in a process of their own), then the
# day paced at 2,000 events/s for 60 s with and without them; about 12
# minutes: BENCHMARKS.md, "Alert streams (SSE): 500 subscribers".
bench-delivery:
	$(GO) run ./bench/cmd/rwbench --only delivery --events 300000 --live-rate 2000

# The processor's events/s with and without 500 alert streams (SSE) open,
# in one run of about 3 minutes; SSE_FLAGS e.g. "REPLYWATCH_BENCH_SSE_RATE=20000".
SSE_FLAGS ?=
bench-sse:
	REPLYWATCH_BENCH_SSE=1 $(SSE_FLAGS) $(GO) test ./app -run '^TestSSELoad$$' -v -count 1 -timeout 15m

# The fault suite (about ten minutes): a busy simulated morning read as a
# backlog from an in-process broker into a real redis-server, with a fault
# striking mid-backlog (Redis stopped 10 s, restarted with and without
# persistence or from an older snapshot, SCRIPT FLUSH, 50 ms added to every
# Redis round trip, broker restarts with and without traffic after it);
# the built binary killed with SIGKILL and stopped with SIGTERM under load;
# the Redis master it writes to killed outright (SIGKILL) under load, on a
# Redis Cluster and under Sentinel, its replica promoted without the last
# writes;
# and the built binary scaled 1→3→1 with a replica killed while it
# delivers alerts, on a standalone Redis, on a three-master Redis Cluster
# and on a Sentinel-watched primary, a master failed over mid-run on the
# last two (redis-server, redis-cli and redis-sentinel on PATH). After each, figures and alerts must be the offline replay's.
# Each case prints a FAULT line; BENCHMARKS.md records them. A short subset
# (broker restart, Redis restarted empty, poison records) runs in every
# `go test ./app/`, and a Redis Cluster master killed, its slots reached
# again within seconds, in every `go test ./state/`.
faults:
	./scripts/faults.sh

# The soak: the built binary under live simulated traffic for SOAK (30
# minutes by default; make soak SOAK=5m for less) while a second replica
# joins and leaves, with goroutine and resident-memory checks and exact
# figures at the end. Prints a SOAK line and what the live heap gained from
# the warm level to the end, by allocation site (heap profiles of a binary
# built with the soak tag); BENCHMARKS.md records it.
SOAK ?= 30m
soak:
	$(GO) test -tags soak -count=1 -timeout 3h -v -run '^TestSoak$$' ./cmd/replywatch/ -args -soak=$(SOAK)

# The whole test suite, as CI runs it.
test:
	./scripts/test.sh
