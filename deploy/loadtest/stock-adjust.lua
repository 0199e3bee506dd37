-- wrk script: admin stock adjustments, POST /api/v1/products/{sku}/stock,
-- +1 or -1 at random over the SKUS products LOAD-0001… that run.sh creates
-- (100,000 on hand each, so the walk never meets a bound). Spread over that
-- many rows, 32 connections rarely wait for each other's row locks, as
-- pgbench -N's over its 1,000,000 accounts. TOKEN comes from the environment.
local token = os.getenv("TOKEN")
local skus = tonumber(os.getenv("SKUS") or "1000")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init()
  math.randomseed(os.time() * 1000 + id)
end

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"

request = function()
  local sku = string.format("LOAD-%04d", math.random(skus))
  local delta = math.random(2) == 1 and 1 or -1
  return wrk.format(nil, "/api/v1/products/" .. sku .. "/stock", nil,
    '{"warehouse":"west","delta":' .. delta .. ',"reason":"load test"}')
end
