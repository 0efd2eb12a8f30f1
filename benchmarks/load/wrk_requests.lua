-- The requests of an HTTP figure for wrk (benchmarks.harness.wrk_load).
--
--   wrk -t1 -c8 -d10s -H 'Authorization: ...' -s wrk_requests.lua URL -- METHOD FILE
--
-- FILE holds one request a line, "<path>\t<body>" (the body may be empty, for a GET). Each
-- thread pre-formats every request once (wrk.format adds the -H headers, Host and
-- Content-Length) and sends them in turn, each thread from its own offset, on keep-alive
-- connections; each connection sends its next request when the previous answer is read,
-- as the Python load clients do. done() prints the figures as one JSON line after "WRK_JSON ".

local requests = {}
local next_index = 0
local threads_started = 0

function setup(thread)
  thread:set("thread_number", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  local method, file = args[1], args[2]
  for line in io.lines(file) do
    local path, body = line:match("^([^\t]*)\t(.*)$")
    if body == "" then
      body = nil
    end
    requests[#requests + 1] = wrk.format(method, path, nil, body)
  end
  next_index = (thread_number or 0) * 7919 % #requests
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

function done(summary, latency, requests_stats)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d}, "median_us": %d, "p99_us": %d, '
      .. '"mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(99.0), latency.mean, latency.max
  ))
end
