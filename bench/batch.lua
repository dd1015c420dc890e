-- wrk script: POST /api/v1/usage/batch with BATCH distinct events per request.
-- Ids combine a run tag, the thread, a per-thread request counter and the
-- position in the batch, so nothing is a duplicate: every event is a debit.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  run_tag = args[1]
  key = args[2]
  user = args[3]
  batch = tonumber(args[4])
end

function request()
  counter = counter + 1
  local parts = {}
  for i = 1, batch do
    parts[i] = string.format(
      '{"event_id":"%s-%d-%d-%d","user":"%s","model":"gpt-4o-mini","input_tokens":%d,"output_tokens":500}',
      run_tag, tid, counter, i, user, 1000 + i % 7)
  end
  return wrk.format("POST", "/api/v1/usage/batch", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, '{"events":[' .. table.concat(parts, ",") .. ']}')
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors_status=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
