#!/usr/bin/env bash
# Instructions per request (valgrind's callgrind, counting only inside the connection tasks)
# for a durable create, a GET by id and a list page of 100, for release binaries
# /tmp/profiled-before and /tmp/profiled-final (copy the two builds there first). Deterministic
# for a given binary and data, unlike requests/s on a shared machine. Needs valgrind, curl, jq.
set -u
A='Accept: application/vnd.appgate.peer-v23+json'
for which in before final; do
  bin=/tmp/profiled-$which
  dir=$(mktemp -d); port=18601
  PROFILED_ADMIN_PASSWORD=bench-password-0123456789 $bin serve --listen 127.0.0.1:$port --data-dir $dir/db >$dir/log 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && break; sleep 0.1; done
  T=$(curl -s http://127.0.0.1:$port/admin/login -H "$A" -H 'Content-Type: application/json' -d '{"providerName":"local","deviceId":"4c07bc67-57ea-42dd-b702-c2d6c45419fc","username":"admin@localhost","password":"bench-password-0123456789"}' | jq -r .token)
  for i in $(seq -w 1 300); do
    curl -s http://127.0.0.1:$port/admin/client-profiles -H "$A" -H "Authorization: Bearer $T" -H 'Content-Type: application/json' -d "{\"name\":\"Profile $i\",\"identityProviderName\":\"local\",\"notes\":\"n $i\",\"tags\":[\"t\"]}" -o /dev/null
  done
  ID=$(curl -s "http://127.0.0.1:$port/admin/client-profiles?range=0-1" -H "$A" -H "Authorization: Bearer $T" | jq -r '.data[0].id')
  kill $pid; wait $pid
  for kind in get list create; do
    case $kind in
      get) url="http://127.0.0.1:$port/admin/client-profiles/$ID";;
      list) url="http://127.0.0.1:$port/admin/client-profiles?range=0-100";;
    esac
    if [ $kind = create ]; then
      : > $dir/curl.cfg
      for i in $(seq 300); do printf 'url = "http://127.0.0.1:%s/admin/client-profiles"\nheader = "%s"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "{\\"name\\":\\"New %s\\",\\"identityProviderName\\":\\"local\\"}"\noutput = /dev/null\nnext\n' "$port" "$A" "$T" "$i" >> $dir/curl.cfg; done
      sed -i '$ d' $dir/curl.cfg
    else
      printf 'header = "%s"\nheader = "Authorization: Bearer %s"\n' "$A" "$T" > $dir/curl.cfg
      for i in $(seq 300); do printf 'url = "%s"\noutput = /dev/null\n' "$url" >> $dir/curl.cfg; done
    fi
    valgrind --tool=callgrind --callgrind-out-file=$dir/cg.$kind --toggle-collect='*GracefulConnectionFuture*' \
      $bin serve --listen 127.0.0.1:$port --data-dir $dir/db >$dir/vlog.$kind 2>&1 &
    vpid=$!
    for _ in $(seq 600); do curl -sf http://127.0.0.1:$port/healthz >/dev/null 2>&1 && break; sleep 0.2; done
    # Warm-up outside the counted requests is not possible (the toggle counts every connection): one connection of 300.
    curl -s -K $dir/curl.cfg -w '%{http_code}\n' | sort | uniq -c | tr '\n' ' '
    kill $vpid; wait $vpid 2>/dev/null
    total=$(callgrind_annotate $dir/cg.$kind 2>/dev/null | grep -m1 "PROGRAM TOTALS" | awk '{gsub(",","",$1); print $1}')
    echo "$which $kind total=$total per_request=$((total/300))"
  done
  rm -rf $dir
done
