-- wrk script: at the end, prints one machine-readable line with the run's
-- totals and latency percentiles (µs), including p99.9 that --latency does
-- not show. Parsed by tests/load/harness.py (the line starts with LOADSTATS).
--
-- WRK_HOSTS=N (many-hosts) rotates the Host header over h0..h(N-1).example.com.
-- The requests are formatted once per thread, so the per-request client cost
-- is a table lookup. Without it no request() hook is defined, so wrk keeps
-- its static (fastest) request path and every proxy sees the same client.
local hosts = tonumber(os.getenv("WRK_HOSTS") or "0") or 0

if hosts > 0 then
  local reqs = {}
  local i = 0

  function init(args)
    for k = 0, hosts - 1 do
      reqs[k + 1] = wrk.format("GET", "/", { Host = "h" .. k .. ".example.com" })
    end
    i = math.random(0, hosts - 1)
  end

  function request()
    i = (i % hosts) + 1
    return reqs[i]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "LOADSTATS requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d " ..
    "status=%d timeout=%d p50=%d p90=%d p99=%d p999=%d mean=%.1f max=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.mean, latency.max))
end
