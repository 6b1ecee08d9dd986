-- Bulk load: POST /api/info/bulk with a JSON array of `rows` rows, each with a unique id.
-- Run with one connection per thread (-t N -c N) and: -- base=<first id> stride=<ids per thread> rows=<rows per request>
-- A row is acknowledged when its result in the answer (same order) has status 201.
package.path = (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua;" .. package.path
local lib = require("benchlib")

setup = lib.setup
done = lib.done

local pending = {}
local rows = 1000
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   lib.init_ids(args)
   rows = tonumber(lib.parse_args(args).rows or rows)
   lib.publish()
end

function request()
   pending = {}
   local bodies = {}
   for i = 1, rows do
      local id = lib.next_id()
      pending[i] = id
      bodies[i] = lib.insert_body(id)
   end
   return wrk.format("POST", "/api/info/bulk", headers, "[" .. table.concat(bodies, ",") .. "]")
end

function response(status, headers, body)
   if status < 200 or status >= 300 then
      lib.stats.non2xx = lib.stats.non2xx + 1
      pending = {}
      return
   end
   local i = 1
   for row_status in string.gmatch(body, '"status":%s*(%d+)') do
      if row_status == "201" and pending[i] then lib.ack(pending[i]) end
      i = i + 1
   end
   pending = {}
end
