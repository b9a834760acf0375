-- wrk: each request searches with a different StudyDate lower bound (all before the stored studies),
-- so every answer is the full first page and none can be served from a cache.
counter = 0
request = function()
  counter = counter + 1
  local y = 1000 + counter // 336
  local m = 1 + (counter // 28) % 12
  local d = 1 + counter % 28
  return wrk.format("GET", wrk.path .. string.format("&StudyDate=%04d%02d%02d-", y, m, d))
end
