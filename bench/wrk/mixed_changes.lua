-- Mixed load with every kind of change: mostly cached reads (GET /api/info, the list, and
-- GET /api/info/<id>, alternately), and a change every 20 of them, in turn: POST /api/info,
-- PUT, PATCH, POST, DELETE. A PUT, PATCH or DELETE is sent with If-Match: the ETag of a GET of the row
-- just before it on the same connection.
-- Every acknowledged change is followed, on the same connection, by a read that must show
-- it, counted as stale if not (as mixed.lua does for inserts): after an insert the list
-- must contain the new id; after an update the row must have its new name; after a delete
-- the row must be a 404.
-- Each thread changes only rows it inserted (ids from its own stripe), so no If-Match of its
-- can fail because another thread got there first: a 412 is counted as a non-2xx.
-- Inserts alternate between rows that are kept (acknowledged: the harness checks they are
-- in the table at the end) and rows that are later deleted (never acknowledged).
-- Run with one connection per thread (-t N -c N) and: -- base=<first id> stride=<ids per thread>
package.path = (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua;" .. package.path
local lib = require("benchlib")

setup = lib.setup
done = lib.done

local EVERY = 20                 -- one change in 20 requests
local CHANGES = { "insert", "put", "patch", "insert", "delete" }
local SEED_ROWS = 50             -- rows 1..50 exist before any scenario (bench/run.py)
local json = { ["Content-Type"] = "application/json" }

local k = 0
local turn = 0                   -- which of CHANGES comes next
local renamed = 0                -- makes every new name unique
local inserts = 0                -- odd inserts are kept, even ones are deleted later
local kept, doomed = {}, {}      -- this thread's live rows: kept, and to be deleted
local list_request
local step = nil                 -- the request in flight, as a table
local follow = nil               -- the step that must come next, if any

function init(args)
   lib.init_ids(args)
   list_request = wrk.format("GET", "/api/info")
   k = tid % EVERY   -- stagger the threads' changes
   lib.publish()
end

local function header(headers, name)
   for key, value in pairs(headers) do
      if string.lower(key) == name then return value end
   end
   return nil
end

local function newest(rows)
   return rows[#rows]
end

local function remove(rows, id)
   for i = #rows, 1, -1 do
      if rows[i] == id then table.remove(rows, i) return end
   end
end

local function row_path(id)
   return "/api/info/" .. id
end

-- The next change: an insert instead when this thread has no row for it yet.
local function start_change()
   local kind = CHANGES[turn % #CHANGES + 1]
   turn = turn + 1
   if kind == "insert" then
      return { kind = "insert", id = lib.next_id() }
   end
   local id
   if kind == "delete" then id = newest(doomed) else id = newest(kept) or newest(doomed) end
   if id == nil then return { kind = "insert", id = lib.next_id() } end
   -- First read the row for its ETag; the change itself follows.
   return { kind = "etag", id = id, change = kind }
end

local function plain_read()
   if k % 2 == 0 then return { kind = "list" } end
   local live = (k % 4 == 1) and newest(kept) or newest(doomed)
   return { kind = "row", id = live or (k % SEED_ROWS + 1) }
end

function request()
   if follow ~= nil then
      step, follow = follow, nil
   else
      k = k + 1
      if k % EVERY == 0 then step = start_change() else step = plain_read() end
   end
   local s = step
   if s.kind == "insert" then
      return wrk.format("POST", "/api/info", json, lib.insert_body(s.id))
   elseif s.kind == "put" then
      local headers = { ["Content-Type"] = "application/json", ["If-Match"] = s.etag }
      return wrk.format("PUT", row_path(s.id), headers,
                        '{"name": "' .. s.name .. '", "money": "' .. (s.id % 1000) .. '.75"}')
   elseif s.kind == "patch" then
      local headers = { ["Content-Type"] = "application/json", ["If-Match"] = s.etag }
      return wrk.format("PATCH", row_path(s.id), headers, '{"name": "' .. s.name .. '"}')
   elseif s.kind == "delete" then
      return wrk.format("DELETE", row_path(s.id), { ["If-Match"] = s.etag })
   elseif s.kind == "list" or s.kind == "check_list" then
      return list_request
   end
   -- "row", "etag", "check_row": a read of one row
   return wrk.format("GET", row_path(s.id))
end

local function stale_unless(shown)
   lib.stats.checked = lib.stats.checked + 1
   if not shown then lib.stats.stale = lib.stats.stale + 1 end
end

function response(status, headers, body)
   local s = step
   step = nil
   local ok = status >= 200 and status < 300
   if s.kind == "check_row" and s.gone then
      -- A deleted row's read must be a 404 (its cached 200 gone at once).
      if status ~= 404 and not ok then lib.stats.non2xx = lib.stats.non2xx + 1 end
      stale_unless(status == 404)
      return
   end
   if not ok then
      lib.stats.non2xx = lib.stats.non2xx + 1
      return
   end
   if s.kind == "insert" then
      inserts = inserts + 1
      if inserts % 2 == 1 then
         lib.ack(s.id)
         kept[#kept + 1] = s.id
      else
         doomed[#doomed + 1] = s.id
      end
      follow = { kind = "check_list", id = s.id }
   elseif s.kind == "etag" then
      local etag = header(headers, "etag")
      if etag == nil then return end
      renamed = renamed + 1
      follow = { kind = s.change, id = s.id, etag = etag, name = "c" .. tid .. "x" .. renamed }
   elseif s.kind == "put" or s.kind == "patch" then
      follow = { kind = "check_row", id = s.id, name = s.name }
   elseif s.kind == "delete" then
      remove(doomed, s.id)
      follow = { kind = "check_row", id = s.id, gone = true }
   elseif s.kind == "check_list" then
      stale_unless(string.find(body, '"id":%s*' .. s.id .. "[,}%s]") ~= nil)
   elseif s.kind == "check_row" then
      stale_unless(string.find(body, '"name":%s*"' .. s.name .. '"', 1) ~= nil)
   end
end
