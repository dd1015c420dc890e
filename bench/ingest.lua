-- wrk script: POST a usage event with a unique event_id per request.
-- Ids combine the thread number, a per-thread counter and a run tag, so
-- nothing is a duplicate: every request is a real debit. With a fourth
-- argument N > 1 the events are spread over the users bench0..bench<N-1>.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  run_tag = args[1] or tostring(os.time())
  key = args[2] or ""
  user = args[3] or "bench@example.com"
  users = tonumber(args[4] or "1")
end

function request()
  counter = counter + 1
  local who = user
  if users > 1 then
    -- bench0@example.com ... bench<users-1>@example.com, in turn
    who = string.format("bench%d@example.com", (counter * 7 + tid) % users)
  end
  local body = string.format(
    '{"event_id":"%s-%d-%d","user":"%s","model":"gpt-4o-mini","input_tokens":1000,"output_tokens":500}',
    run_tag, tid, counter, who)
  return wrk.format("POST", "/api/v1/usage", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors_status=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
