//go:build soak

package main

import (
	"os"

	"github.com/replywatch/replywatch/internal/heapsignal"
)

// The soak (make soak) builds this binary with the soak tag, so that it
// can see where the soaked replica's memory goes. Only such a build, and
// only when REPLYWATCH_SOAK_HEAPPROFILE is set, answers SIGUSR1 with a
// garbage collection and a heap profile written to <value>.<n>.pprof
// (<value>.<n>.done once written). Nothing is returned to the OS, so that
// the resident memory the soak samples is as it would be. The replywatch binary users run has no
// such hook and no profiling endpoint.
const envSoakHeap = "REPLYWATCH_SOAK_HEAPPROFILE"

func init() {
	if base := os.Getenv(envSoakHeap); base != "" {
		go heapsignal.Serve(base, false)
	}
}
