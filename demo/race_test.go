//go:build race

package demo

// The race detector slows the processor about tenfold: a lighter day keeps
// the catch-up, and so the timing the tests check, within reach.
const raceRate = 2
