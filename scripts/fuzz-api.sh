#!/usr/bin/env bash
# Fuzzes the REST API of a real CSS and a real ESS with schemathesis, driven by openapi.yaml:
# every operation gets generated requests (valid and invalid), and a 5xx answer or an answer
# that does not match the documented schema fails the run.
#
# Settings (environment):
#   FUZZ_EXAMPLES  generated cases per operation (default 20)
#   FUZZ_TIMEOUT   seconds one node's run may take before it is stopped and failed (default 600)
#   FUZZ_SEED      seed, to replay a run (default: random)
# Needs python3 with venv; schemathesis is installed, pinned, into target/venv-schemathesis.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

SCHEMATHESIS_VERSION=4.32.5
examples="${FUZZ_EXAMPLES:-20}"
run_timeout="${FUZZ_TIMEOUT:-600}"
venv=target/venv-schemathesis
work=target/fuzz
# A sync admin may act on every organization the fuzzer makes up (an org admin would mostly
# get 403s); shutdown is therefore left out, or the node under test would stop itself.
admin="ops@ops:secret"

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build --locked --quiet --bin edge-sync-service
binary=target/debug/edge-sync-service
python="$venv/bin/python"

rm -rf "$work"
mkdir -p "$work"
pids=()
# Called by the EXIT trap (shellcheck cannot see that and would call it unreachable).
# shellcheck disable=SC2317
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_node NAME PORT [VAR=VALUE...]: a node on 127.0.0.1:PORT (plain HTTP, dummy
# authenticator) with its own persistence root under target/fuzz/NAME. MaxObjectSize keeps
# the answers independent of the machine's free disk space: a chunked upload declaring a
# total between the free space and the disk's size is rightly answered 507 (retry once
# space is freed), which the fuzzer counts as a server error; with a limit of 1 GiB such
# totals are refused as too large (413) before any space is asked for.
start_node() {
  local name=$1 port=$2
  shift 2
  local root="$PWD/$work/$name"
  mkdir -p "$root/sync"
  echo '{"syncAdmins":["ops"],"exchangeAdmins":["boss"],"regularUsers":["bob"]}' >"$root/sync/dummy-auth.json"
  env -i PATH="$PATH" LISTENING_TYPE=unsecure LISTENING_ADDRESS=127.0.0.1 UNSECURE_LISTENING_PORT="$port" \
    PERSISTENCE_ROOT_PATH="$root" COMMUNICATION_PROTOCOL=http MAX_OBJECT_SIZE=1073741824 LOG_LEVEL=INFO LOG_TRACE_DESTINATION=stdout NO_COLOR=1 "$@" \
    "$binary" -c "$root/absent-sync.conf" >"$work/$name.log" 2>&1 &
  pids+=($!)
}

# wait_healthy PORT: until the node answers its health route (30 s at most).
wait_healthy() {
  "$python" - "$1" <<'EOF'
import base64, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/api/v1/health"
auth = "Basic " + base64.b64encode(b"admin@myorg:secret").decode()
deadline = time.monotonic() + 30
while True:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": auth}), timeout=2) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"the node on port {sys.argv[1]} did not become healthy")
    time.sleep(0.05)
EOF
}

# The document as one role serves it: that role's operations, ESS paths without the org.
"$python" - openapi.yaml "$work" <<'EOF'
import copy, sys, yaml
source, out = sys.argv[1], sys.argv[2]
doc = yaml.safe_load(open(source))
methods = {"get", "put", "post", "delete", "patch", "head", "options"}
is_org = lambda p: p.get("$ref", "").endswith("/parameters/orgID")
for role in ("css", "ess"):
    view = copy.deepcopy(doc)
    view.pop("x-walkthrough", None)
    paths = {}
    for path, item in doc["paths"].items():
        item = copy.deepcopy(item)
        ops = {m: op for m, op in item.items() if m in methods
               and role in op.get("x-roles", []) + op.get("x-refused-on", [])}
        if not ops:
            continue
        target = item.get("x-ess-path", path) if role == "ess" else path
        if target != path:
            for op in ops.values():
                for response in op.get("responses", {}).values():
                    response.pop("links", None)  # they lead to CSS-only operations
            for holder in [item] + list(ops.values()):
                holder["parameters"] = [p for p in holder.get("parameters", []) if not is_org(p)]
        shared = {k: v for k, v in item.items() if k not in methods}
        paths[target] = {**shared, **ops}
    view["paths"] = paths
    with open(f"{out}/openapi-{role}.yaml", "w") as f:
        yaml.safe_dump(view, f, sort_keys=False)
EOF

css_port=$(free_port)
start_node css "$css_port" NODE_TYPE=CSS
wait_healthy "$css_port"
ess_port=$(free_port)
start_node ess "$ess_port" NODE_TYPE=ESS ORG_ID=myorg DESTINATION_TYPE=edge DESTINATION_ID=node1 \
  HTTP_CSS_HOST=127.0.0.1 HTTP_CSS_PORT="$css_port" HTTP_POLLING_INTERVAL=2
wait_healthy "$ess_port"

seed_args=()
[ -n "${FUZZ_SEED:-}" ] && seed_args=(--seed "$FUZZ_SEED")
status=0
# fuzz NAME ROLE PORT [schemathesis options...]: one bounded run; a finding fails the script.
fuzz() {
  local name=$1 role=$2 port=$3
  shift 3
  echo "== schemathesis: $name (port $port, $examples examples per operation)"
  local started
  started=$(date +%s)
  # Run inside target/fuzz, where schemathesis keeps its cache.
  (cd "$work" && timeout --signal=INT --kill-after=30 "$run_timeout" \
    "$repo/$venv/bin/schemathesis" run "openapi-$role.yaml" \
    --url "http://127.0.0.1:$port" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "$examples" \
    --max-redirects 0 \
    --request-timeout 30 \
    --no-color \
    --generation-database none \
    --report junit --report-dir "report-$name" \
    "${seed_args[@]}" "$@") || status=1
  echo "== $name: $(($(date +%s) - started)) s"
}
fuzz css-api css "$css_port" --auth "$admin" --exclude-operation-id shutdown --exclude-tag node-to-node
# The node-to-node routes as an edge node of myorg, which names itself in the header.
fuzz css-node-to-node css "$css_port" --auth "myorg/edge/fuzz:secret" \
  --header "X-Sync-Service-Dest: myorg/edge/fuzz" --include-tag node-to-node
fuzz ess-api ess "$ess_port" --auth "$admin" --exclude-operation-id shutdown
# A crash would have ended a node: both must still be running.
for pid in "${pids[@]}"; do
  kill -0 "$pid" 2>/dev/null || { echo "a node died during fuzzing; see $work/*.log"; status=1; }
done
exit $status
