#!/usr/bin/env bash
# Wall clock: sled, etcd with one node, etcd with two nodes (32 connections each, at once), for
# each binary given (built with --features etcd), alternated over two rounds.
#   LOAD=path/to/load benches/etcd-load.sh CLUSTER_DIR BINARY...
# LOAD: the load bench's binary (cargo bench --bench load --no-run prints it); CLUSTER_DIR: a
# cluster from .ci/etcd-cluster start. Each set-up gets a fresh data directory or key prefix.
set -u
[ $# -ge 2 ] && [ -n "${LOAD:-}" ] || { echo "usage: LOAD=… $0 CLUSTER_DIR BINARY..." >&2; exit 2; }
L=$LOAD; EP=$(cat "$1/endpoints"); shift
export PROFILED_ADMIN_PASSWORD=bench-password-0123456789
free() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
start() { # start DIR PORT [args]
  local dir=$1 port=$2; shift 2
  $B serve --listen 127.0.0.1:$port --data-dir $dir "$@" >$dir.log 2>&1 &
  echo $! >$dir.pid
  for _ in $(seq 200); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && return; sleep 0.1; done
  echo "no start: $(tail -3 $dir.log)"
}
stop() { kill $(cat $1.pid); wait $(cat $1.pid) 2>/dev/null; }
run=$RANDOM
for round in 1 2; do for B in "$@"; do
  echo "#### $B round $round"
  t=$(mktemp -d)
  echo "== sled"; p=$(free); start $t/sled $p
  $L --url http://127.0.0.1:$p --duration 4 --scenarios 1,2,3 2>&1 | grep -E "^[123] "; stop $t/sled
  echo "== etcd, one node"; p=$(free); start $t/e1 $p --store etcd://$EP --store-prefix bench-$run-$round-1-${B##*-}
  $L --url http://127.0.0.1:$p --duration 4 --scenarios 1,2,3 2>&1 | grep -E "^[123] "; stop $t/e1
  echo "== etcd, two nodes (32 connections each, both at once)"
  p1=$(free); start $t/e2a $p1 --store etcd://$EP --store-prefix bench-$run-$round-2-${B##*-}
  p2=$(free); start $t/e2b $p2 --store etcd://$EP --store-prefix bench-$run-$round-2-${B##*-}
  ($L --url http://127.0.0.1:$p1 --duration 4 --concurrency 32 --scenarios 1,2,3 2>&1 | grep -E "^[123] " | sed 's/^/A /') &
  bp=$!
  ($L --url http://127.0.0.1:$p2 --duration 4 --concurrency 32 --scenarios 1,2,3 2>&1 | grep -E "^[123] " | sed 's/^/B /')
  wait $bp; sleep 1
  stop $t/e2a; stop $t/e2b; rm -rf $t
done; done
