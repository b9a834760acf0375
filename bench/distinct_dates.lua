-- wrk (LuaJIT, Lua 5.1 syntax): each request searches with a different StudyDate lower bound (all before the stored studies),
-- so every answer is the full first page and none can be served from a cache. Each wrk thread has its
-- own Lua state: threads interleave their counters so no two requests anywhere are the same.
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  counter = tid
end

function request()
  counter = counter + 2
  local y = 1000 + math.floor(counter / 336)
  local m = 1 + math.floor(counter / 28) % 12
  local d = 1 + counter % 28
  return wrk.format("GET", wrk.path .. string.format("&StudyDate=%04d%02d%02d-", y, m, d))
end
