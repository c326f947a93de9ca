//go:build !race

package demo

// raceRate is the simulator rate of race-detector runs; 0 keeps the default.
const raceRate = 0
