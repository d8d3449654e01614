-- wrk's script for `make bench` (tests/benchmarks/run.py): the figures as one JSON
-- line, and for a POST a body with a fresh idempotency key on every request.
--
-- BENCH_BODY: the POST body, "{key}" standing for the key; BENCH_RUN: a prefix
-- unique to this wrk run, so that no two runs (nor the warm-up) share a key.
-- Headers (cookies, CSRF, HX-Request) come from wrk's -H options.

local body = os.getenv("BENCH_BODY")
local run = os.getenv("BENCH_RUN") or "run"
local threads = {}
local counter = 0
local prefix = run

function setup(thread)
  thread:set("number", #threads)
  table.insert(threads, thread)
end

function init(args)
  prefix = run .. "-" .. tostring(number)
end

if body then
  -- Defined only for a POST: without it wrk sends its one prepared request, faster.
  request = function()
    counter = counter + 1
    local key = prefix .. "-" .. counter
    return wrk.format("POST", nil, nil, (body:gsub("{key}", key)))
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, ' ..
    '"p99_us": %d, "status_errors": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
