package wsconn_test

import (
	"testing"

	"go.uber.org/goleak"
)

// No goroutine may outlive its connection: every test must leave none.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
