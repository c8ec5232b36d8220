package natsbroker_test

import (
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
)

// Each node of an application connects to NATS and gives its hub a
// broker; members then subscribe and publish exactly as on one node.
func Example() {
	run := func(url string) error {
		nc, err := natsbroker.Connect(url) // reconnects forever
		if err != nil {
			return err
		}
		defer nc.Close()
		hub, err := topics.NewHub(&topics.Options{Broker: natsbroker.New(nc, nil)})
		if err != nil {
			return err
		}
		defer hub.Close()
		// ... serve handlers that hub.Join their connections ...
		return nil
	}
	_ = run
}
