-- wrk script: POST the real pull_request.opened fixture, signed, with a new delivery id each time.
-- Set by bench/intake.py (environment):
--   BENCH_BODY_FILE  file holding the exact body (the fixture's bytes)
--   BENCH_SIGNATURE  "sha256=<hex>" of that body under the bench's webhook secret
--   BENCH_RUN        a nonce per run, so ids never repeat across rounds
--   BENCH_DELAY_MS   optional: mean think time per connection before each request (rate limit)
-- Prints one line "BENCH key=value ..." in done() that the driver parses.

local body_file = assert(os.getenv("BENCH_BODY_FILE"), "BENCH_BODY_FILE not set")
local f = assert(io.open(body_file, "rb"))
local body = f:read("*a")
f:close()
local signature = assert(os.getenv("BENCH_SIGNATURE"), "BENCH_SIGNATURE not set")
local run = os.getenv("BENCH_RUN") or "run"
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("tid", next_id)
  table.insert(threads, thread)
  next_id = next_id + 1
end

function init(args)
  math.randomseed(os.time() * 1000 + tid)
  counter = 0
  accepted = 0   -- 202
  other = 0      -- anything else
end

function request()
  counter = counter + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "pull_request",
    ["X-GitHub-Delivery"] = string.format("%s-%d-%d", run, tid, counter),
    ["X-Hub-Signature-256"] = signature,
    ["User-Agent"] = "GitHub-Hookshot/bench",
  }
  return wrk.format("POST", "/webhooks/github", headers, body)
end

function response(status, headers, resp_body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end

-- Exponentially distributed think time with mean BENCH_DELAY_MS: a fixed delay keeps the
-- connections in phase (every cycle a burst of -c requests); random gaps spread them out, so
-- the arrivals approach a Poisson stream. Still a closed loop: not wrk2's corrected latency.
if delay_ms > 0 then
  function delay()
    return -math.log(1 - math.random()) * delay_ms
  end
end

function done(summary, latency, requests)
  local acc, oth = 0, 0
  for _, t in ipairs(threads) do
    acc = acc + t:get("accepted")
    oth = oth + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d accepted=%d other=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, acc, oth, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
