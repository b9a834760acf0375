-- wrk (LuaJIT, Lua 5.1 syntax): each request fetches the next stored instance, so a per-instance cache
-- does not serve every request. export_cpu.py fills in the list of instance URLs below.
local paths = {
-- PATHS --
}
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  counter = tid or 0
end

function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1])
end
