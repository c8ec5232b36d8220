#!/usr/bin/env bash
# Builds wsbench and runs the whole side-by-side comparison of WebSocket
# servers on this machine (loopback only). Arguments go to "wsbench run":
#
#   scripts/wsbench.sh                      # full run, every library
#   scripts/wsbench.sh -quick               # smoke run, about a minute
#   scripts/wsbench.sh -libs gws,gorilla -json /tmp/wsbench.json
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o /tmp/wsbench ./cmd/wsbench
exec /tmp/wsbench run "$@"
