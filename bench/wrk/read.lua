-- Plain reads of the URL given to wrk: no request()/response() functions, so wrk sends a
-- static request and spends no Lua per request. Non-2xx shows up in wrk's status errors
-- (status > 399).
package.path = (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua;" .. package.path
local lib = require("benchlib")

setup = lib.setup
done = lib.done
