#!/usr/bin/env python3
# Per benchmark: R rounds, old and new test binaries alternating. Each run's
# CPU (user+system of the child, getrusage) less the setup's (a 1-iteration
# run, least of 3), over the iterations; and the benchmark's own ns/op.
# Prints min and median of each. The binaries, old tree and new:
#   go test -c -o /tmp/proc/pipe-new.test ./pipeline   (and state-, event-; -old from the base tree)
import resource, subprocess, sys, re, statistics
benches = [
    ("pipe", "^BenchmarkStormBatch500$", 200),
    ("pipe", "^BenchmarkRepartitionFact$", 200000),
    ("state", "^BenchmarkEncodeBatch$", 1000),
    ("event", "^BenchmarkDecodeChatMessage$", 300000),
]
R = int(sys.argv[1]) if len(sys.argv) > 1 else 7
only = sys.argv[2] if len(sys.argv) > 2 else ""
def run(binary, bench, n):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([binary, "-test.run", "XXX", "-test.bench", bench, "-test.benchmem", "-test.benchtime", f"{n}x"],
                         capture_output=True, text=True, cwd="/tmp/proc").stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = [l for l in out.splitlines() if l.startswith("Benchmark")][0]
    return cpu, line
for pkg, bench, n in benches:
    if only and only not in bench:
        continue
    res = {"old": [], "new": []}
    setup = {}
    meta = {}
    for tree in ("old", "new"):
        b = f"/tmp/proc/{pkg}-{tree}.test"
        setup[tree] = min(run(b, bench, 1)[0] for _ in range(3))
    for r in range(R):
        for tree in (("old", "new") if r % 2 == 0 else ("new", "old")):
            b = f"/tmp/proc/{pkg}-{tree}.test"
            cpu, line = run(b, bench, n)
            ns = float(line.split()[2])
            res[tree].append(((cpu - setup[tree]) / n * 1e6, ns / 1000))
            a = re.search(r"(\d+) allocs/op", line); bo = re.search(r"(\d+) B/op", line)
            meta[tree] = f"{bo.group(1)} B/op {a.group(1)} allocs/op"
    name = bench.strip("^$")
    for tree in ("old", "new"):
        cpus = [c for c, _ in res[tree]]; walls = [w for _, w in res[tree]]
        print(f"{name} {tree}: CPU µs/op min {min(cpus):.2f} median {statistics.median(cpus):.2f} [{' '.join(f'{c:.2f}' for c in cpus)}]; wall µs/op min {min(walls):.2f} median {statistics.median(walls):.2f}; {meta[tree]}", flush=True)
