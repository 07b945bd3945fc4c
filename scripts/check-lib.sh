# shellcheck shell=bash
# What the checks that run nodes share (check-arm.sh, check-image.sh), sourced by them: free
# ports, waits with a deadline, and one object synchronized from a CSS to an ESS. The script
# sets $work (its temporary folder, where the nodes' *.log files are), $check (its name in
# messages) and the array pids (of the processes it stops at the end), and may define
# extra_logs to print more when a wait fails.
# shellcheck disable=SC2154 # $work, $check and pids are the sourcing script's.

AUTH=(-u myorg/admin:any)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until WHAT SECONDS COMMAND...: waits for COMMAND to succeed; past the deadline, says
# what did not happen, shows the logs and exits 1.
wait_until() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "error: $check: $what did not happen within $seconds s" >&2
      for log in "$work"/*.log; do
        [ -f "$log" ] || continue
        echo "--- $log" >&2
        tail -n 20 "$log" >&2
      done
      if declare -F extra_logs >/dev/null; then extra_logs >&2; fi
      exit 1
    fi
    sleep 0.2
  done
}

# start NAME NODE_TYPE PORT CSS_PORT COMMAND...: a node (COMMAND, e.g. a binary) on
# 127.0.0.1:PORT in its own folder, an ESS synchronizing over HTTP with the CSS on CSS_PORT;
# returns once it answers.
start() {
  local name=$1 node_type=$2 port=$3 css_port=$4
  shift 4
  env NODE_TYPE="$node_type" LISTENING_TYPE=unsecure LISTENING_ADDRESS=127.0.0.1 \
    UNSECURE_LISTENING_PORT="$port" PERSISTENCE_ROOT_PATH="$work/$name" STORAGE_PROVIDER=bolt \
    COMMUNICATION_PROTOCOL=http HTTP_CSS_HOST=127.0.0.1 HTTP_CSS_PORT="$css_port" \
    DESTINATION_TYPE=edge DESTINATION_ID="$name" ORG_ID=myorg HTTP_POLLING_INTERVAL=1 \
    "$@" -c "$work/absent.conf" >"$work/$name.log" 2>&1 &
  pids+=($!)
  wait_until "$name to answer" 120 curl -sf "${AUTH[@]}" "http://127.0.0.1:$port/api/v1/health"
}

# sync_object LABEL CSS_PORT ESS_PORT NODE: once NODE (the ESS on ESS_PORT) is registered with
# the CSS on CSS_PORT, puts a 3 MB object with random data on the CSS for it, waits until the
# ESS serves it and compares the bytes.
sync_object() {
  local label=$1 css_port=$2 ess_port=$3 node=$4
  wait_until "$node to register" 120 \
    bash -c "curl -sf ${AUTH[*]} http://127.0.0.1:$css_port/api/v1/destinations/myorg | grep -q '\"$node\"'"
  head -c 3000000 /dev/urandom >"$work/data-$label"
  local object="http://127.0.0.1:$css_port/api/v1/objects/myorg/model/m-$label"
  curl -sf "${AUTH[@]}" -X PUT "$object" \
    -d "{\"meta\":{\"objectID\":\"m-$label\",\"objectType\":\"model\",\"destinationType\":\"edge\",\"destinationID\":\"$node\"}}"
  curl -sf "${AUTH[@]}" -X PUT --data-binary "@$work/data-$label" "$object/data"
  local copy="http://127.0.0.1:$ess_port/api/v1/objects/model/m-$label/data"
  wait_until "the object to reach $node" 180 curl -sf "${AUTH[@]}" -o "$work/copy-$label" "$copy"
  cmp "$work/data-$label" "$work/copy-$label"
}
