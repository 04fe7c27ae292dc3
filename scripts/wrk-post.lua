-- wrk script of the benchmarks (scripts/bench.sh, bench-rss.sh, bench-cpu.sh): POSTs the body in
-- $BODY; with $TOKENS (comma-separated) each request takes the next token, spreading the load over
-- several users. Headers such as Content-Type come from wrk's -H. Ends with one line
-- "RESULT <answers that were not errors> <errors, non-2xx included> <seconds>".
wrk.method = "POST"
wrk.body = os.getenv("BODY") or ""
-- With TOKENS (comma-separated), requests take the tokens in turn: load spread over several users.
local tokens, n = {}, 0
for t in string.gmatch(os.getenv("TOKENS") or "", "[^,]+") do tokens[#tokens + 1] = t end
if #tokens > 0 then
  request = function()
    n = n + 1
    wrk.headers["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1]
    return wrk.format()
  end
end
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
            + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %d %.3f\n", summary.requests - bad, bad, summary.duration / 1e6))
end
