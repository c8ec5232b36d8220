// Package testenv lets colibri's tests that need a program from outside
// Go (a browser, Node.js, Python) say loudly that they did not run.
package testenv

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

var shown sync.Map // notices already on the terminal

// Missing reports that what a test needs is not installed: why says what
// is missing and how to install it. Where the environment variable env is
// "required" (CI sets it) the test fails. Otherwise the notice goes to
// the terminal once per process, even without -v, where go test would
// hide a skipped test's message, and Missing returns it for t.Skip.
func Missing(t testing.TB, env, why string) string {
	t.Helper()
	msg := "TEST NOT RUN: " + why
	if os.Getenv(env) == "required" {
		t.Fatal(msg)
	}
	if _, seen := shown.LoadOrStore(msg, true); !seen {
		Notice(msg)
	}
	return msg
}

// Notice writes msg on the terminal, which go test does not capture, or
// on stderr when the process has none.
func Notice(msg string) {
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		fmt.Fprintln(tty, msg)
		_ = tty.Close()
		return
	}
	fmt.Fprintln(os.Stderr, msg)
}
