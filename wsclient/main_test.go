package wsclient_test

import (
	"testing"

	"go.uber.org/goleak"
)

// No goroutine may outlive its connection, on either side: every test
// must leave none behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
