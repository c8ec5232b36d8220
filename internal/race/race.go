//go:build !race

// Package race reports whether the race detector is on, so that allocation
// tests can step aside: under -race, sync.Pool drops items on purpose.
package race

// Enabled is true when built with -race.
const Enabled = false
