-- Draw up to n items with replacement, atomically with their sample counts and the removal of
-- items that reach max_times_sampled. Randomness comes from the client's seed, so a seeded
-- client reproduces its samples.
-- Payloads stay out of Lua (copying them through it cost more than the draw itself): the reply
-- names the drawn ids and the client reads their payloads with one HMGET. An item removed in
-- between was not served: the client's next call hands its count back (`uncount`). A table with
-- max_times_sampled removes items as it serves them, so there payloads come back inline.
-- ARGV: n, seed, peek ('1': read-only, no counts, no limiter), mode ('uniform'|'prioritized'|'mix'),
--       exponent, current_round, replay_fraction, uncount, then filter tags (uniform/prioritized only).
-- Returns {'ids', id1, times1, ...} | {'ok', id1, payload1, times1, ...} | {'limited', reason} | {'missing'}.
local cfg = config()
if not cfg then return {'missing'} end
local n, peek, mode = tonumber(ARGV[1]), ARGV[3] == '1', ARGV[4]
local exponent, current_round, replay_fraction = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local uncount = tonumber(ARGV[8])
math.randomseed(tonumber(ARGV[2]))
if uncount > 0 and not peek then redis.call('HINCRBY', STATS, 'samples', -uncount) end

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

local function pick_rank(key, card)
  local rank = math.floor(math.random() * card)
  return redis.call('ZRANGE', key, rank, rank)[1]
end

-- The groups a draw may come from, with their sizes, cumulated for a size-weighted choice.
local function groups_where(accept)
  local chosen, total = {}, 0
  for _, group in ipairs(redis.call('SMEMBERS', INDEXES)) do
    if accept(group) then
      local key = P .. 'grp:' .. group
      local card = redis.call('ZCARD', key)
      total = total + card
      chosen[#chosen + 1] = {key = key, card = card, upto = total}
    end
  end
  return chosen, total
end

-- Uniform over the union of groups: a group by its size, then a uniform rank inside it.
local function pick_from(groups, total)
  local target = math.random() * total
  for _, g in ipairs(groups) do
    if target < g.upto then return pick_rank(g.key, g.card) end
  end
  local last = groups[#groups]
  return pick_rank(last.key, last.card)
end

local filters = {}
for i = 9, #ARGV do filters[#filters + 1] = ARGV[i] end
local function filtered(group) return group_matches(group, filters) end

local drawn, tmp = {}, nil
if mode == 'uniform' then
  if #filters == 0 then
    local card = redis.call('ZCARD', ORDER)
    if card > 0 then
      for _ = 1, n do drawn[#drawn + 1] = pick_rank(ORDER, card) end
    end
  else
    local groups, total = groups_where(filtered)
    if total > 0 then
      for _ = 1, n do drawn[#drawn + 1] = pick_from(groups, total) end
    end
  end
elseif mode == 'prioritized' then
  -- P(i) ∝ priority^exponent: one pass builds the cumulative weights, each draw is a binary search
  local source = PRIO
  if #filters > 0 then
    local groups = groups_where(filtered)
    tmp = P .. 'tmp:sample'
    redis.call('DEL', tmp)
    for _, g in ipairs(groups) do redis.call('ZUNIONSTORE', tmp, 2, tmp, g.key) end
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
  local function round_of(group)
    for _, tag in ipairs(split_lines(group)) do
      local r = string.match(tag, '^round=(%d+)$')
      if r then return tonumber(r) end
    end
    return -1
  end
  local current, current_total = groups_where(function(g) return round_of(g) == current_round end)
  local earlier, earlier_total = groups_where(function(g) local r = round_of(g); return r >= 0 and r < current_round end)
  local exact = n * replay_fraction
  local n_earlier = math.floor(exact)
  if math.random() < exact - n_earlier then n_earlier = n_earlier + 1 end
  if earlier_total == 0 then n_earlier = 0 end
  if current_total == 0 then n_earlier = n end
  for k = 1, n do
    if k <= n_earlier and earlier_total > 0 then
      drawn[#drawn + 1] = pick_from(earlier, earlier_total)
    elseif current_total > 0 then
      drawn[#drawn + 1] = pick_from(current, current_total)
    end
  end
end
if tmp then redis.call('DEL', tmp) end

local inline = cfg.max_times_sampled > 0 and not peek
local reply = {inline and 'ok' or 'ids'}
if #drawn == 0 then return reply end
local payloads = {}
if inline then
  for i = 1, #drawn, CHUNK do
    local part = redis.call('HMGET', DATA, unpack(drawn, i, math.min(i + CHUNK - 1, #drawn)))
    for j = 1, #part do payloads[i + j - 1] = part[j] end
  end
end
-- sample counts: one read and one write for the batch (a batch may draw an item more than once)
local counts = {}
for i = 1, #drawn, CHUNK do
  local part = redis.call('HMGET', TIMES, unpack(drawn, i, math.min(i + CHUNK - 1, #drawn)))
  for j = 1, #part do counts[drawn[i + j - 1]] = tonumber(part[j] or '0') end
end
local expired, gone, served, updates, present = {}, {}, 0, {}, {}
for i, id in ipairs(drawn) do
  if (payloads[i] or not inline) and not gone[id] then
    present[id] = true
    local t = counts[id]
    if not peek then
      t = t + 1
      counts[id] = t
      if cfg.max_times_sampled > 0 and t >= cfg.max_times_sampled then
        gone[id] = true
        expired[#expired + 1] = id
      end
    end
    served = served + 1
    reply[#reply + 1] = id
    if inline then reply[#reply + 1] = payloads[i] end
    reply[#reply + 1] = t
  end
end
if not peek then
  for id in pairs(present) do
    if not gone[id] then updates[#updates + 1] = id; updates[#updates + 1] = counts[id] end
  end
  if #updates > 0 then variadic('HSET', TIMES, updates, 2) end
  redis.call('HINCRBY', STATS, 'samples', served)
  if #expired > 0 then redis.call('HINCRBY', STATS, 'expired', remove_ids(expired)) end
end
return reply
