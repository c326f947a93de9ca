package main

import (
	"fmt"
	"io"
)

func cmdReplay(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "replywatch replay: not built yet")
	return exitFailed
}
