-- wrk script: product reads, GET /api/v1/products/{sku}, spread at random
-- over the SKUS products LOAD-0001… that run.sh creates.
local skus = tonumber(os.getenv("SKUS") or "1000")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init()
  math.randomseed(os.time() * 1000 + id)
end

request = function()
  return wrk.format("GET", string.format("/api/v1/products/LOAD-%04d", math.random(skus)))
end
