#!/usr/bin/env bash
# Optimistic locking against jobstate's EventoDB gateway, with curl only:
# the flow of EventoDB's "Optimistic Locking" guide.
#
#   Client A                    Gateway                   Client B
#      |-- Read (version=v) ----->|                          |
#      |                          |<---- Read (version=v) ---|
#      |-- Write (expect=v) ----->|                          |
#      |<---- Success (v+1) ------|                          |
#      |                          |<---- Write (expect=v) ---|
#      |                          |---- CONFLICT (409) ----->|
#      |                          |<---- Read (version=v+1) -|
#      |                          |<---- Write (expect=v+1) -|
#      |                          |---- Success (v+2) ------>|
#
# Environment:
#   URL     the gateway (default http://127.0.0.1:8080)
#   TOKEN   a bearer token allowed to write in the namespace (required)
#   STREAM  the stream to write (default account-<random>, new on every run)
#   NAMESPACE  sent as X-Jobstate-Namespace, for a token that does not name
#           its namespace (a Kubernetes token); a namespace token needs none
#
# It exits non-zero on any answer other than the expected one, so it doubles
# as a test (test/e2e runs it).
set -euo pipefail

URL=${URL:-http://127.0.0.1:8080}
TOKEN=${TOKEN:-}
STREAM=${STREAM:-account-$RANDOM$$}
NAMESPACE=${NAMESPACE:-}

if [ -z "$TOKEN" ]; then
  echo "optimistic-locking.sh: set TOKEN to a token of the namespace (see examples/eventodb/README.md)" >&2
  exit 2
fi

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# rpc BODY: POSTs BODY to /rpc; sets STATUS (the HTTP status) and BODY (the
# answer, without its final newline).
rpc() {
  local out
  if ! out=$(curl -sS -X POST "$URL/rpc" \
    -H "Content-Type: application/json" \
    -H "Authorization: Bearer $TOKEN" \
    ${NAMESPACE:+-H "X-Jobstate-Namespace: $NAMESPACE"} \
    -w '\n%{http_code}' \
    -d "$1"); then
    fail "no answer from $URL/rpc"
  fi
  STATUS=${out##*$'\n'}
  BODY=${out%$'\n'*}
  BODY=${BODY%$'\n'}
}

# field NAME: the value of the string or integer field NAME in $BODY (no
# jq: the gateway answers with compact JSON, and the fields read here occur
# once and hold no escaped quotes).
field() {
  printf '%s' "$BODY" | sed -nE "s/.*\"$1\":(\"([^\"]*)\"|(-?[0-9]+)).*/\2\3/p"
}

# version: the stream's version, -1 if it has no messages (null).
version() {
  rpc "[\"stream.version\", \"$STREAM\"]"
  [ "$STATUS" = 200 ] || fail "stream.version: HTTP $STATUS $BODY"
  if [ "$BODY" = "null" ]; then
    echo -1
  else
    case "$BODY" in
    '' | *[!0-9]*) fail "stream.version: expected an integer or null, got $BODY" ;;
    esac
    echo "$BODY"
  fi
}

# deposit WHO AMOUNT EXPECTED: writes a Deposited message with
# expectedVersion EXPECTED; leaves the answer in STATUS and BODY.
deposit() {
  rpc "[
    \"stream.write\",
    \"$STREAM\",
    {\"type\": \"Deposited\", \"data\": {\"amount\": $2}, \"metadata\": {\"client\": \"$1\"}},
    {\"expectedVersion\": $3}
  ]"
}

# expect_written WHO POSITION: the last write succeeded at POSITION.
expect_written() {
  [ "$STATUS" = 200 ] || fail "$1's write: HTTP $STATUS $BODY"
  [ "$(field position)" = "$2" ] || fail "$1's write: expected position $2, got $BODY"
  echo "$1: written at position $2 (globalPosition $(field globalPosition))"
}

echo "stream: $STREAM at $URL"

# A new stream has no version: stream.version answers null, which is
# expectedVersion -1.
VERSION=$(version)
[ "$VERSION" = -1 ] || fail "a new stream is at version $VERSION, expected null"
echo "stream.version: null (no stream yet), so expectedVersion -1"
deposit setup 100 "$VERSION"
expect_written setup 0

# Both clients read the version.
A=$(version)
B=$(version)
echo "A and B read version $A"
[ "$A" = 0 ] && [ "$B" = 0 ] || fail "expected both at version 0, got A $A and B $B"

# A writes first, with the version it read.
deposit A 50 "$A"
expect_written A 1

# B writes with the same, now stale, version: 409 STREAM_VERSION_CONFLICT.
deposit B 25 "$B"
[ "$STATUS" = 409 ] || fail "B's stale write: expected HTTP 409, got $STATUS $BODY"
[ "$(field code)" = STREAM_VERSION_CONFLICT ] || fail "B's stale write: expected STREAM_VERSION_CONFLICT, got $BODY"
[ "$(field expected)" = 0 ] && [ "$(field actual)" = 1 ] ||
  fail "B's stale write: expected details {expected: 0, actual: 1}, got $BODY"
echo "B: conflict, as expected: $(field code): $(field message)"

# B handles it: read the version again and retry.
B=$(version)
[ "$B" = 1 ] || fail "B re-read version $B, expected 1"
echo "B re-reads version $B and writes again"
deposit B 25 "$B"
expect_written B 2

# The stream holds the three deposits, in order.
rpc "[\"stream.get\", \"$STREAM\", {\"position\": 0, \"batchSize\": 10}]"
[ "$STATUS" = 200 ] || fail "stream.get: HTTP $STATUS $BODY"
AMOUNTS=$(printf '%s' "$BODY" | grep -o '"amount":[0-9]*' | sed 's/.*://' | tr '\n' ' ')
[ "$AMOUNTS" = "100 50 25 " ] || fail "stream.get: expected the deposits 100 50 25, got $BODY"
[ "$(version)" = 2 ] || fail "the stream should end at version 2"
echo "stream.get: deposits ${AMOUNTS% } at positions 0 1 2; no write was lost"
echo "OK"
