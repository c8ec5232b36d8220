package natsbroker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

// topics.ErrClosed's doc: returned "by an InProcess Link after it was
// closed (natsbroker's Links return an error matching it too)". An
// InProcess Link's Publish after Close returns ErrClosed and reaches no
// one; a closed natsbroker Link's Publish must do the same, not go on
// sending to the other nodes.
func TestClosedLinkPublish(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	conn := func() *nats.Conn {
		nc, err := nats.Connect(ns.ClientURL(), nats.NoEcho())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	got := make(chan topics.Publication, 4)
	recv, err := natsbroker.New(conn(), &natsbroker.Options{Logger: quiet}).Open(func(_ context.Context, p topics.Publication) { got <- p })
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	if err := recv.Subscribe("a"); err != nil {
		t.Fatal(err)
	}
	send, err := natsbroker.New(conn(), &natsbroker.Options{Logger: quiet}).Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	pub := func(text string) error {
		return send.Publish(context.Background(), topics.Publication{Topic: "a",
			Message: wsconn.Prepare(messages.Message{Kind: messages.KindText, Payload: []byte(text)})})
	}
	if err := pub("open"); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if string(p.Message.Message().Payload) != "open" {
			t.Fatalf("got %q", p.Message.Message().Payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the open link's publish never arrived")
	}
	if err := send.Close(); err != nil {
		t.Fatal(err)
	}
	err = pub("closed")
	select {
	case p := <-got:
		t.Errorf("a closed link's publish reached another node: %q", p.Message.Message().Payload)
	case <-time.After(300 * time.Millisecond):
	}
	if !errors.Is(err, topics.ErrClosed) {
		t.Fatalf("Publish on a closed link = %v, want an error matching topics.ErrClosed", err)
	}
}
