package wstest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must leave no goroutine behind: servers, sessions and
// in-memory connections all end with the test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
