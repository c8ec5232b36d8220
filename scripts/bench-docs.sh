#!/usr/bin/env bash
# Regenerates every measured figure in the docs on this machine, in one go:
#
#   1. wsbench run       colibri side by side with its peers (about 6 min)
#   2. wsbench capacity  colibri's cost model and two nodes on NATS (about 2 min)
#   3. wsbench render    rewrites the generated parts of docs/performance.md
#                        and docs/capacity.md, and the charts in docs/bench/
#
# The results are kept in docs/bench/wsbench.json and docs/bench/capacity.json.
#
#   scripts/bench-docs.sh              # measure, then render
#   scripts/bench-docs.sh -render      # render again from the kept results
#   scripts/bench-docs.sh -quick       # a smoke run of everything (figures not for the docs)
#
# Run it on a quiet machine: other work on the same cores moves every figure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/docs/bench"
mkdir -p "$out"
(cd "$root/cmd/wsbench" && go build -o /tmp/wsbench .)

quick=()
case "${1:-}" in
  -render) ;;
  -quick) quick=(-quick) ;& # then measure
  "")
    /tmp/wsbench run "${quick[@]}" -json "$out/wsbench.json"
    /tmp/wsbench capacity "${quick[@]}" -json "$out/capacity.json"
    ;;
  *) echo "usage: $0 [-render | -quick]" >&2; exit 2 ;;
esac
/tmp/wsbench render -run "$out/wsbench.json" -capacity "$out/capacity.json" -docs "$root/docs"
