package natsbroker_test

// Review of how a node treats a message on its subjects that no colibri
// node would send. Helpers come from promises_test.go (startPNode, join,
// expect, publish, guard) and multinode_test.go (startNATS).

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/messages"
)

// TestCornerForeignEmptyTopicDoesNotCrashTheNode: the receiving link
// ignores "a message that is not a colibri publish" (broker.go receive),
// and Publication.Topic, which a Broker hands its hub, "is valid"
// (topics.Publication). A well-formed envelope published by a plain NATS
// client on "colibri.topics.~" (one escaped level, empty: the topic "",
// which no colibri node can publish) reaches a node whose member
// subscribes to "#". The node must ignore it and go on delivering. The
// check runs in a child process, since the failure is a panic in the
// broker's receiving goroutine, which ends the whole process.
func TestCornerForeignEmptyTopicDoesNotCrashTheNode(t *testing.T) {
	if os.Getenv("REVIEW_TP_CHILD") == "1" {
		reviewForeignEmptyTopicChild(t)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCornerForeignEmptyTopicDoesNotCrashTheNode$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "REVIEW_TP_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the node's process failed (%v):\n%.3000s", err, out)
	}
}

func reviewForeignEmptyTopicChild(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	pub := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true})
	node := startPNode(t, ns.ClientURL(), pnodeOptions{})
	ws, _ := node.join(t, "", "#")
	raw, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	// Version 2, text, node id, sequence, number per topic, no key, payload.
	env := []byte{2, byte(messages.KindText)}
	env = binary.BigEndian.AppendUint64(env, 0xfeed)
	env = binary.BigEndian.AppendUint64(env, 1)
	env = binary.BigEndian.AppendUint64(env, 1)
	env = binary.AppendUvarint(env, 0)
	env = append(env, "foreign"...)
	if err := raw.Publish("colibri.topics.~", env); err != nil {
		t.Fatal(err)
	}
	if err := raw.FlushTimeout(guard); err != nil {
		t.Fatal(err)
	}
	publish(t, pub.hub, "after", "marker")
	expect(t, ws, "marker")
}
