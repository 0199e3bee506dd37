-- wrk script: admin stock adjustments, +1/-1 alternating over ten skus of
-- the demo catalogue, so stock stays put. TOKEN comes from the environment.
local token = os.getenv("TOKEN")
local skus = {"ACME-001", "ACME-002", "ACME-003", "NW-001", "NW-002", "LUM-001", "KCO-001", "PAP-001", "SON-001", "SON-002"}
local n = 0
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local delta = (n % 4 < 2) and 1 or -1
  local sku = skus[(n % #skus) + 1]
  return wrk.format(nil, "/api/v1/products/" .. sku .. "/stock", nil,
    '{"warehouse":"west","delta":' .. delta .. ',"reason":"load test"}')
end
