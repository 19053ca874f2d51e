-- wrk script for bench/webhook_intake.py: posts pre-signed Meta webhook bodies, one per request,
-- in order (then again: Meta redelivers), and prints the figures as one JSON line.
local sigs, bodies, n = {}, {}, 0
local path = "/"

function init(args)
  path = args[2]
  for line in io.lines(args[1]) do
    local sig, body = line:match("^(%S+)\t(.*)$")
    if sig then
      sigs[#sigs + 1] = sig
      bodies[#bodies + 1] = body
    end
  end
end

function request()
  n = n + 1
  if #bodies == 0 then
    return wrk.format("GET", path)
  end
  local k = ((n - 1) % #bodies) + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = sigs[k]}, bodies[k])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"duration_us":%d,"socket_errors":%d,"status_errors":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
