#!/usr/bin/env bash
# Builds wsbench and runs the whole side-by-side comparison of WebSocket
# servers on this machine (loopback only). Arguments go to "wsbench run":
#
#   scripts/wsbench.sh                      # full run, every library
#   scripts/wsbench.sh -quick               # smoke run, about a minute
#   scripts/wsbench.sh -libs gws,gorilla -json /tmp/wsbench.json
#
# wsbench is a Go module of its own (cmd/wsbench/go.mod) that builds
# against the colibri in this repository.
set -euo pipefail
cd "$(dirname "$0")/../cmd/wsbench"
go build -o /tmp/wsbench .
exec /tmp/wsbench run "$@"
