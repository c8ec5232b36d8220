package natsbroker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
)

// topics.ErrClosed's doc: a closed Link's methods return an error matching
// it, from natsbroker as from topics.InProcess, so that whoever drives a
// Link can tell a closed one with errors.Is.
func TestClosedLinkErrorMatchesTopicsErrClosed(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b := natsbroker.New(nc, &natsbroker.Options{Logger: quiet})
	l, err := b.Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Subscribe("a"); !errors.Is(err, topics.ErrClosed) {
		t.Errorf("Subscribe on a closed link = %v, want an error matching topics.ErrClosed", err)
	}
}
