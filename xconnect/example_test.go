package xconnect_test

import (
	"fmt"
	"os"
	"strings"

	_ "github.com/colibri-ws/colibri/xconnect"
)

// A program imports the package for its side effect, next to its other
// imports in package main; by the time main runs, net/http's HTTP/2 server
// offers extended CONNECT.
func Example() {
	fmt.Println(strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1"))
	// Output: true
}
