-- wrk script for bench/run-server.sh: every request asks for a different open
-- pixel, cycling through the tokens of a file (one 48-char token a line).
-- usage: [ROTATE_RESULT=FILE] wrk ... -s bench/rotate.lua http://HOST:PORT -- TOKENFILE
-- Each thread starts at its own offset; request() counts what it sent, so
-- done() can report sent (responses + requests in flight when wrk stopped).
-- done() prints one line "requests=N sent=S p99_us=P rps=R errors=E non2xx=X
-- timeouts=T" and appends it to $ROTATE_RESULT when set.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local reqs, n = {}, 0
sent = 0 -- global: done() reads it with thread:get

function init(args)
  local f = assert(io.open(args[1], "r"))
  for tok in f:lines() do
    if #tok > 0 then
      n = n + 1
      reqs[n] = wrk.format("GET", "/o/" .. tok .. ".gif")
    end
  end
  f:close()
  assert(n > 0, "no tokens in " .. args[1])
  -- id is set by setup() before init() runs in the thread
  counter = ((tonumber(id) or 0) * 7919) % n
end

function request()
  counter = counter + 1
  if counter > n then counter = 1 end
  sent = sent + 1
  return reqs[counter]
end

function done(summary, latency, requests)
  local s = 0
  for _, t in ipairs(threads) do s = s + (t:get("sent") or 0) end
  -- wrk calls request() once in thread 1 to check it, before any connection
  if s > 0 then s = s - 1 end
  local e = summary.errors
  local errs = e.connect + e.read + e.write + e.timeout
  local secs = summary.duration / 1e6
  local line = string.format("requests=%d sent=%d p99_us=%d rps=%.1f errors=%d non2xx=%d timeouts=%d",
    summary.requests, s, latency:percentile(99), summary.requests / secs, errs, e.status, e.timeout)
  io.write(line .. "\n")
  local out = os.getenv("ROTATE_RESULT")
  if out and out ~= "" then
    local f = assert(io.open(out, "a"))
    f:write(line .. "\n")
    f:close()
  end
end
