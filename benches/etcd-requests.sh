#!/usr/bin/env bash
# etcd requests per API request (deterministic): etcd's grpc_server_handled_total summed over
# the members, around 100 sequential creates, GETs and list pages, for each binary given.
#   benches/etcd-requests.sh CLUSTER_DIR BINARY...   (a cluster from .ci/etcd-cluster start;
#   binaries built with --features etcd). Needs curl, jq, python3.
set -u
[ $# -ge 2 ] || { echo "usage: $0 CLUSTER_DIR BINARY..." >&2; exit 2; }
EP=$(cat "$1/endpoints"); shift; A='Accept: application/vnd.appgate.peer-v23+json'
export PROFILED_ADMIN_PASSWORD=bench-password-0123456789
counts() { for m in ${EP//,/ }; do curl -s http://$m/metrics; done | grep '^grpc_server_handled_total' | grep 'grpc_code="OK"' |
  sed -E 's/.*grpc_method="([^"]+)".* ([0-9.e+]+)$/\1 \2/' | awk '{a[$1]+=$2} END {for (k in a) printf "%s=%d ", k, a[k]}'; }
diffc() { python3 -c '
import sys
a=dict(x.split("=") for x in sys.argv[1].split()); b=dict(x.split("=") for x in sys.argv[2].split())
print(" ".join(f"{k}={(int(b[k])-int(a.get(k,0)))/100:.2f}" for k in sorted(b) if int(b[k])-int(a.get(k,0))>0))' "$1" "$2"; }
for B in "$@"; do
  d=$(mktemp -d); pre=rpc-$RANDOM
  $B serve --listen 127.0.0.1:18700 --data-dir $d --store etcd://$EP --store-prefix $pre >$d.log 2>&1 & pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18700/readyz >/dev/null && break; sleep 0.1; done
  T=$(curl -s http://127.0.0.1:18700/admin/login -H "$A" -H 'Content-Type: application/json' -d '{"providerName":"local","deviceId":"4c07bc67-57ea-42dd-b702-c2d6c45419fc","username":"admin@localhost","password":"bench-password-0123456789"}' | jq -r .token)
  c0=$(counts)
  for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18700/admin/client-profiles -H "$A" -H "Authorization: Bearer $T" -H 'Content-Type: application/json' -d "{\"name\":\"P $i\",\"identityProviderName\":\"local\"}"; done
  c1=$(counts)
  ID=$(curl -s "http://127.0.0.1:18700/admin/client-profiles?range=0-1" -H "$A" -H "Authorization: Bearer $T" | jq -r '.data[0].id')
  c1=$(counts)
  for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18700/admin/client-profiles/$ID -H "$A" -H "Authorization: Bearer $T"; done
  c2=$(counts)
  for i in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:18700/admin/client-profiles?range=0-100" -H "$A" -H "Authorization: Bearer $T"; done
  c3=$(counts)
  echo "$B create: $(diffc "$c0" "$c1")"
  echo "$B get:    $(diffc "$c1" "$c2")"
  echo "$B list:   $(diffc "$c2" "$c3")"
  kill $pid; wait $pid 2>/dev/null; rm -rf $d
done
