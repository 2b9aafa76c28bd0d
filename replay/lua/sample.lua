-- Draw up to n items with replacement, atomically with their sample counts and the removal of
-- items that reach max_times_sampled. Randomness comes from the client's seed, so a seeded
-- client reproduces its samples.
-- ARGV: n, seed, peek ('1': read-only, no counts, no limiter), mode ('uniform'|'prioritized'|'mix'),
--       exponent, current_round, replay_fraction, then filter tags (uniform/prioritized only).
-- Returns {'ok', id1, payload1, times1, ...} | {'limited', reason} | {'missing'}.
local cfg = config()
if not cfg then return {'missing'} end
local n, peek, mode = tonumber(ARGV[1]), ARGV[3] == '1', ARGV[4]
local exponent, current_round, replay_fraction = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
math.randomseed(tonumber(ARGV[2]))

local size = redis.call('ZCARD', ORDER)
if not peek then
  -- Reverb's CanSample: at least min_size items, and samples may not run more than min_diff ahead
  if size < cfg.min_size then
    return {'limited', 'table holds ' .. size .. ' of the ' .. cfg.min_size .. ' items needed to sample'}
  end
  local allowed = math.floor(stat('inserts') * cfg.spi - stat('samples') - cfg.min_diff)
  if allowed < 1 then
    return {'limited', 'samples are ahead of inserts by the rate limiter\'s error buffer'}
  end
  n = math.min(n, allowed)
end

-- a population is a zset of ids; uniform draws pick a random rank in it
local function pick_rank(key, card)
  local rank = math.floor(math.random() * card)
  return redis.call('ZRANGE', key, rank, rank)[1]
end

local population, tmp = ORDER, nil
local filters = {}
for i = 8, #ARGV do filters[#filters + 1] = P .. 'idx:' .. ARGV[i] end
if #filters > 0 then
  tmp = P .. 'tmp:sample'
  redis.call('ZINTERSTORE', tmp, #filters, unpack(filters))
  population = tmp
end

local drawn = {}
if mode == 'uniform' then
  local card = redis.call('ZCARD', population)
  if card > 0 then
    for _ = 1, n do drawn[#drawn + 1] = pick_rank(population, card) end
  end
elseif mode == 'prioritized' then
  -- P(i) ∝ priority^exponent: one pass builds the cumulative weights, each draw is a binary search
  local source = PRIO
  if tmp then
    redis.call('ZINTERSTORE', tmp, 2, PRIO, tmp, 'WEIGHTS', 1, 0)
    source = tmp
  end
  local flat = redis.call('ZRANGE', source, 0, -1, 'WITHSCORES')
  local ids, cumulative, total = {}, {}, 0
  for i = 1, #flat, 2 do
    local p = tonumber(flat[i + 1])
    if p > 0 then
      total = total + p ^ exponent
      ids[#ids + 1] = flat[i]; cumulative[#cumulative + 1] = total
    end
  end
  if total > 0 then
    for _ = 1, n do
      local target, lo, hi = math.random() * total, 1, #cumulative
      while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if cumulative[mid] > target then hi = mid else lo = mid + 1 end
      end
      drawn[#drawn + 1] = ids[lo]
    end
  end
else -- 'mix': STE's replay; a replay_fraction of draws from earlier rounds, the rest from the current round
  local current_key = P .. 'idx:round=' .. current_round
  local current_card = redis.call('ZCARD', current_key)
  local earlier, earlier_total = {}, 0
  for _, tag in ipairs(redis.call('SMEMBERS', INDEXES)) do
    local r = tonumber(string.match(tag, '^round=(%d+)$') or '')
    if r and r < current_round then
      local key = P .. 'idx:' .. tag
      local card = redis.call('ZCARD', key)
      earlier_total = earlier_total + card
      earlier[#earlier + 1] = {key = key, card = card, upto = earlier_total}
    end
  end
  local exact = n * replay_fraction
  local n_earlier = math.floor(exact)
  if math.random() < exact - n_earlier then n_earlier = n_earlier + 1 end
  if earlier_total == 0 then n_earlier = 0 end
  if current_card == 0 then n_earlier = n end
  for k = 1, n do
    if k <= n_earlier and earlier_total > 0 then
      local target = math.random() * earlier_total
      for _, group in ipairs(earlier) do
        if target < group.upto then
          drawn[#drawn + 1] = pick_rank(group.key, group.card)
          break
        end
      end
    elseif current_card > 0 then
      drawn[#drawn + 1] = pick_rank(current_key, current_card)
    end
  end
end
if tmp then redis.call('DEL', tmp) end

local reply = {'ok'}
if #drawn == 0 then return reply end
local payloads = {}
for i = 1, #drawn, CHUNK do
  local part = redis.call('HMGET', DATA, unpack(drawn, i, math.min(i + CHUNK - 1, #drawn)))
  for j = 1, #part do payloads[i + j - 1] = part[j] end
end
local times, expired, expired_seen, served = {}, {}, {}, 0
for i, id in ipairs(drawn) do
  if payloads[i] and not expired_seen[id] then
    local t = tonumber(redis.call('HGET', TIMES, id) or '0')
    if not peek then
      t = redis.call('HINCRBY', TIMES, id, 1)
      if cfg.max_times_sampled > 0 and t >= cfg.max_times_sampled then
        expired_seen[id] = true
        expired[#expired + 1] = id
      end
    end
    served = served + 1
    reply[#reply + 1] = id; reply[#reply + 1] = payloads[i]; reply[#reply + 1] = t
  end
end
if not peek then
  redis.call('HINCRBY', STATS, 'samples', served)
  if #expired > 0 then redis.call('HINCRBY', STATS, 'expired', remove_ids(expired)) end
end
return reply
