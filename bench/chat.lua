-- wrk script: POST one small non-stream chat completion per request.
-- args: <path> <bearer keys> (comma-separated, used in turn: one key per user;
-- empty: the upstream stand-in and the bare proxy take none).
function init(args)
  path = args[1] or "/v1/chat/completions"
  keys = {}
  for k in string.gmatch(args[2] or "", "[^,]+") do keys[#keys + 1] = k end
  turn = 0
  body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}],"max_tokens":64}'
end

function request()
  local headers = {["Content-Type"] = "application/json"}
  if #keys > 0 then
    turn = turn % #keys + 1
    headers["Authorization"] = "Bearer " .. keys[turn]
  end
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors_status=%d p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
