-- Mixed load: 95% cached list reads (GET /api/info), 5% inserts (POST /api/info).
-- Every insert is followed, on the same connection, by a list read that must contain the
-- new id (read-after-own-write); a read that does not is counted as stale.
-- Run with one connection per thread (-t N -c N) and: -- base=<first id> stride=<ids per thread>
package.path = (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua;" .. package.path
local lib = require("benchlib")

setup = lib.setup
done = lib.done

local EVERY = 20          -- one insert in 20 requests
local k = 0
local pending_insert = nil  -- id of the insert in flight
local check_id = nil        -- id the next list read must contain
local checking = nil        -- id the list read in flight must contain
local headers = { ["Content-Type"] = "application/json" }
local list_request
-- The read that checks an own insert asks for more rows than any peer's default page: with
-- 32 connections inserting, 20 newer rows can land between the insert and its check, and the
-- row would then be on page 2, not stale (seen: 6 "stale" reads that were page 2).
local check_request

function init(args)
   lib.init_ids(args)
   list_request = wrk.format("GET", "/api/info")
   check_request = wrk.format("GET", "/api/info?limit=100")
   -- Stagger the threads so their inserts do not all land in the same instant.
   k = tid % EVERY
   lib.publish()
end

function request()
   k = k + 1
   if check_id == nil and k % EVERY == 0 then
      pending_insert = lib.next_id()
      checking = nil
      return wrk.format("POST", "/api/info", headers, lib.insert_body(pending_insert))
   end
   pending_insert = nil
   checking = check_id
   check_id = nil
   if checking ~= nil then return check_request end
   return list_request
end

function response(status, headers, body)
   local ok = status >= 200 and status < 300
   if not ok then lib.stats.non2xx = lib.stats.non2xx + 1 end
   if pending_insert ~= nil then
      if ok then
         lib.ack(pending_insert)
         check_id = pending_insert
      end
      pending_insert = nil
   elseif checking ~= nil then
      if ok then
         lib.stats.checked = lib.stats.checked + 1
         if not string.find(body, '"id":%s*' .. checking .. "[,}%s]") then
            lib.stats.stale = lib.stats.stale + 1
         end
      end
      checking = nil
   end
end
