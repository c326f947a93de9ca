package main

import (
	"fmt"
	"io"
)

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "replywatch demo: not built yet")
	return exitFailed
}

func cmdSimulate(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "replywatch simulate: not built yet")
	return exitFailed
}

func cmdReplay(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "replywatch replay: not built yet")
	return exitFailed
}
