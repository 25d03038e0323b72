-- wrk_chat.lua — POST one OpenAI chat request per call; WRK_STREAM=1 asks for a stream.
-- Prints one line "WRKJSON {...}" with the request count and latency percentiles (us).
wrk.method = "POST"
local stream = os.getenv("WRK_STREAM") == "1"
wrk.body = '{"model":"mock-model","messages":[{"role":"user","content":"Say hello"}],"stream":'
    .. (stream and "true" or "false") .. '}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-mock"

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":%d,'
        .. '"non2xx":%d,"p50_us":%d,"p99_us":%d}\n', summary.requests, summary.duration,
        summary.bytes, e.connect + e.read + e.write + e.timeout, e.status,
        latency:percentile(50), latency:percentile(99)))
end
