#!/usr/bin/env bash
# py-spy profile of the intake under bench/intake.py's load (one uvicorn process, wrk with
# bench/signed.lua, a private redis-server on port 6399): raw samples to /tmp/prof.raw.
# Needs `wrk` (apt-get install wrk) and py-spy (.venv/bin/pip install py-spy).
cd "$(dirname "$0")/.."
D=$(mktemp -d)
redis-server --port 6399 --save '' --appendonly no --dir $D --daemonize yes >/dev/null
sleep 0.5
taskset -c 1 .venv/bin/python bench/bot_app.py --port 8099 --redis-url redis://127.0.0.1:6399/0 2>/dev/null &
APP=$!
sleep 4
BODY=tests/fixtures/webhooks/github/pull_request.opened.json
SIG=$(.venv/bin/python - <<'PY'
import hmac, hashlib, sys
sys.path.insert(0, "bench")
from tests.helpers import make_config
secret = make_config("redis://127.0.0.1:1/0").github.webhook_secret.reveal()
print("sha256=" + hmac.new(secret.encode(), open("tests/fixtures/webhooks/github/pull_request.opened.json","rb").read(), hashlib.sha256).hexdigest())
PY
)

export BENCH_BODY_FILE=$BODY BENCH_SIGNATURE=$SIG BENCH_RUN=p$$
timeout 30 taskset -c 0 wrk -t1 -c32 -d3s -s bench/signed.lua http://127.0.0.1:8099/webhooks/github | grep -E "Requests/sec|BENCH"
timeout 40 taskset -c 0 wrk -t1 -c32 -d14s -s bench/signed.lua http://127.0.0.1:8099/webhooks/github > /tmp/wrk.out &
sleep 2
timeout 20 .venv/bin/py-spy record --rate 400 --format raw -o /tmp/prof.raw --pid $APP --duration 10 --nonblocking > /tmp/pyspy.log 2>&1
wait
grep -E "Requests/sec|BENCH" /tmp/wrk.out
kill $APP; redis-cli -p 6399 shutdown nosave >/dev/null 2>&1
