-- The seed's insert URL: GET /info?id=<unique>&name=bench&money=<n>.50
-- Run with one connection per thread (-t N -c N) and: -- base=<first id> stride=<ids per thread>
package.path = (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua;" .. package.path
local lib = require("benchlib")

setup = lib.setup
done = lib.done

local pending

function init(args)
   lib.init_ids(args)
   lib.publish()
end

function request()
   pending = lib.next_id()
   return wrk.format("GET", "/info?id=" .. pending .. "&name=bench&money=" .. (pending % 1000) .. ".50")
end

function response(status, headers, body)
   lib.insert_response(pending, status)
   pending = nil
end
