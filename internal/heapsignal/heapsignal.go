// Package heapsignal writes heap profiles on request, for measurements
// that look at a child process's live memory from outside: the benchmark's
// replicas and the soaked binary. Nothing in the replywatch binary users
// run starts it.
package heapsignal

import (
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"syscall"
)

// Serve answers each SIGUSR1 with a garbage collection and a heap profile
// of live objects written to <base>.<n>.pprof, then writes <base>.<n>.done
// so the asker knows the profile is complete. With free set it also
// returns free memory to the OS before saying so, for a caller that reads
// the live footprint apart from what the collector has not given back;
// without it the resident memory is left as it would be. It never returns:
// run it on a goroutine of its own.
func Serve(base string, free bool) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	for n := 1; ; n++ {
		<-c
		runtime.GC()
		path := base + "." + strconv.Itoa(n)
		if f, err := os.Create(path + ".pprof"); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
		if free {
			debug.FreeOSMemory()
		}
		_ = os.WriteFile(path+".done", nil, 0o644)
	}
}
