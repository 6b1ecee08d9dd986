-- Shared helpers for the benchmark's wrk scripts (wrk 4.1, LuaJIT).
--
-- Every script prints one line "BENCHJSON {...}" from done(): request count, duration,
-- wrk's socket/status errors, latency percentiles (microseconds), and per-thread counters
-- (inserts issued and acknowledged, acknowledged id ranges, non-2xx, stale reads).
--
-- Insert ids: id = base + (tid - 1) * stride + n, n = 0, 1, 2 ... per thread, where `base`
-- comes from the harness (above every id already in the table) and `tid` is given to each
-- thread in setup(). The insert scripts need exactly one connection per thread (-t N -c N),
-- so that each response answers the last request() of its thread: that is how an
-- acknowledged insert is tied to its id.

local M = {}

local threads = {}
local next_tid = 1

function M.setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

-- "key=value" arguments after "--" on the wrk command line.
function M.parse_args(args)
   local out = {}
   for _, a in ipairs(args or {}) do
      local k, v = string.match(a, "^([%w_]+)=(.*)$")
      if k then out[k] = v end
   end
   return out
end

-- Per-thread state (each thread has its own Lua state, so these are per thread).
M.stats = { issued = 0, acked = 0, non2xx = 0, stale = 0, checked = 0, n = 0 }
M.ranges = {}   -- flat list: start1, end1, start2, end2, ...

function M.ack(id)
   local r = M.ranges
   local len = #r
   if len > 0 and r[len] == id - 1 then
      r[len] = id
   else
      r[len + 1] = id
      r[len + 2] = id
   end
   M.stats.acked = M.stats.acked + 1
end

-- This thread's insert ids, from the "base=... stride=..." arguments (see the top).
local first_id, last_id

function M.init_ids(args)
   local a = M.parse_args(args)
   local stride = tonumber(a.stride)
   first_id = tonumber(a.base) + (tid - 1) * stride
   last_id = first_id + stride - 1
end

-- The next unused insert id of this thread, counted as issued.
function M.next_id()
   local id = first_id + M.stats.n
   if id > last_id then error("thread " .. tid .. " ran out of insert ids; raise stride") end
   M.stats.n = M.stats.n + 1
   M.stats.issued = M.stats.issued + 1
   return id
end

function M.insert_body(id)
   return '{"id": ' .. id .. ', "name": "bench", "money": "' .. (id % 1000) .. '.50"}'
end

-- For scripts that only insert: acknowledge `pending` on a 2xx, else count a non-2xx.
function M.insert_response(pending, status)
   if status >= 200 and status < 300 then
      if pending then M.ack(pending) end
   else
      M.stats.non2xx = M.stats.non2xx + 1
   end
end

-- Publish the per-thread state as globals, where done() can read them with thread:get.
function M.publish()
   bench_stats = M.stats
   bench_ranges = M.ranges
end

local function encode(v)
   local t = type(v)
   if t == "number" then
      if v ~= v or v == math.huge or v == -math.huge then return "null" end
      if v == math.floor(v) and math.abs(v) < 2^53 then return string.format("%d", v) end
      return string.format("%.6f", v)
   elseif t == "string" then
      return '"' .. v:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
   elseif t == "boolean" then
      return tostring(v)
   elseif t == "table" then
      if #v > 0 or next(v) == nil then
         local parts = {}
         for i = 1, #v do parts[i] = encode(v[i]) end
         return "[" .. table.concat(parts, ",") .. "]"
      end
      local parts = {}
      for k, x in pairs(v) do parts[#parts + 1] = encode(tostring(k)) .. ":" .. encode(x) end
      return "{" .. table.concat(parts, ",") .. "}"
   end
   return "null"
end
M.encode = encode

function M.done(summary, latency, requests)
   local per_thread = {}
   for _, thread in ipairs(threads) do
      local s = thread:get("bench_stats")
      if s ~= nil then
         per_thread[#per_thread + 1] = {
            tid = thread:get("tid"),
            issued = s.issued, acked = s.acked, non2xx = s.non2xx,
            stale = s.stale, checked = s.checked,
            ranges = thread:get("bench_ranges") or {},
         }
      end
   end
   local out = {
      requests = summary.requests,
      duration_us = summary.duration,
      bytes = summary.bytes,
      errors = {
         connect = summary.errors.connect, read = summary.errors.read,
         write = summary.errors.write, status = summary.errors.status,
         timeout = summary.errors.timeout,
      },
      latency_us = {
         p50 = latency:percentile(50), p90 = latency:percentile(90),
         p99 = latency:percentile(99), max = latency.max, mean = latency.mean,
      },
      threads = per_thread,
   }
   io.write("BENCHJSON ", encode(out), "\n")
end

return M
