-- JSON insert: POST /api/info {"id": <unique>, "name": "bench", "money": "<n>.50"}
-- Run with one connection per thread (-t N -c N) and: -- base=<first id> stride=<ids per thread>
package.path = (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua;" .. package.path
local lib = require("benchlib")

setup = lib.setup
done = lib.done

local first, limit, pending
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   local a = lib.parse_args(args)
   local stride = tonumber(a.stride)
   first = tonumber(a.base) + (tid - 1) * stride
   limit = first + stride - 1
   lib.publish()
end

function request()
   local id = first + lib.stats.n
   if id > limit then error("thread " .. tid .. " ran out of insert ids; raise stride") end
   lib.stats.n = lib.stats.n + 1
   lib.stats.issued = lib.stats.issued + 1
   pending = id
   local body = '{"id": ' .. id .. ', "name": "bench", "money": "' .. (id % 1000) .. '.50"}'
   return wrk.format("POST", "/api/info", headers, body)
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      if pending then lib.ack(pending) end
   else
      lib.stats.non2xx = lib.stats.non2xx + 1
   end
   pending = nil
end
