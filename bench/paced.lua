-- wrk script for bench/run-alerts.sh: background load at a set rate. Like
-- rotate.lua, every request a different open pixel from a file of tokens,
-- but each connection waits PACE_MS between its requests (wrk's delay()):
-- with C connections, about C * 1000 / PACE_MS requests a second.
-- usage: PACE_MS=10 wrk -t2 -c100 -d30s -s bench/paced.lua http://HOST:PORT -- TOKENFILE
local reqs, n, counter = {}, 0, 0
local pace = tonumber(os.getenv("PACE_MS") or "10")

function init(args)
  local f = assert(io.open(args[1], "r"))
  for tok in f:lines() do
    if #tok > 0 then
      n = n + 1
      reqs[n] = wrk.format("GET", "/o/" .. tok .. ".gif", { ["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0) Outlook" })
    end
  end
  f:close()
  counter = math.random(n)
end

function delay()
  return pace
end

function request()
  counter = counter % n + 1
  return reqs[counter]
end

function done(summary, latency, requests)
  io.write(string.format("background: %d requests, %.0f/s, p99 %d us, errors %d\n", summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status))
end
