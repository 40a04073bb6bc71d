-- wrk script: POST /recognize with real MNIST PNGs, one per request, round robin.
-- Bodies are read from the files named in the arguments; each file is named <index>_<label>.body
-- and uploads <index>_<label>.png, so a response is checked against its own filename.
-- An argument "pace=<ms>" makes each connection wait that long between its requests, to hold the
-- load near a rate instead of at saturation; "path=<path>" posts there instead (a query string, say).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for _, arg in ipairs(args) do
    local pace = arg:match("^pace=([%d.]+)$")
    local path = arg:match("^path=(.+)$")
    if pace then
      delay = function() return tonumber(pace) end
    elseif path then
      target = path
    else
      local file = assert(io.open(arg, "rb"))
      bodies[#bodies + 1] = file:read("*a")
      file:close()
    end
  end
  boundary = "inferqbenchboundary"
  headers = {["Content-Type"] = "multipart/form-data; boundary=" .. boundary}
  next_body = math.random(#bodies)
  wrong = 0
  answered = 0
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", target or "/recognize", headers, bodies[next_body])
end

function response(status, headers, body)
  if status == 200 then
    answered = answered + 1
    local expected = body:match('"filename":%s*"%d+_(%d)%.png"')
    local got = body:match('"labels":%s*%[(%d)')
    if expected == nil or expected ~= got then
      wrong = wrong + 1
    end
  end
end

function done(summary, latency, requests)
  local wrong_total, answered_total = 0, 0
  for _, thread in ipairs(threads) do
    wrong_total = wrong_total + thread:get("wrong")
    answered_total = answered_total + thread:get("answered")
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_s": %.6f, "answered": %d, "wrong_labels": %d, ' ..
    '"status_errors": %d, "socket_errors": %d, "timeouts": %d, ' ..
    '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, answered_total, wrong_total,
    errors.status, errors.connect + errors.read + errors.write, errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
