package natsbroker_test

import (
	"testing"

	"go.uber.org/goleak"
)

// No goroutine may outlive its test: not the brokers', not the embedded
// NATS server's, not the connections'.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
