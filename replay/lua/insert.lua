-- Index a batch atomically: skip ids already present (a retried push never duplicates), index the
-- rest, then evict past max_size. Stops early when the rate limiter says so (Reverb's CanInsert);
-- the client waits and sends the remainder.
-- Payloads never pass through Lua: copying 1 KiB strings into and out of it cost three times a plain
-- HSET. So an insert is one MULTI: this script, the client's HSET of every payload of the batch, then
-- settle.lua. Whatever that HSET must not leave behind is noted here in ASIDE: a duplicate's payload
-- as it was (the first write of an id wins, as ever), or '' for an id left unindexed (held back by
-- the limiter, or evicted at once), whose payload settle.lua deletes.
-- ARGV: mode ('limit' | 'ignore' | 'probe'), then per record: id, priority, group signature.
-- Returns {records processed, inserted, duplicates, evicted} or {-1} if the table does not exist.
-- 'probe' (ARGV[2]: the next id to insert) writes nothing and returns {room}: how many records the
-- client may send now (0 while the limiter holds new items back; 1 for a duplicate, which needs none),
-- so that a held-back insert never sends payloads only to have them dropped.
local cfg = config()
if not cfg then return {-1} end
local mode = ARGV[1]
local inserts, samples = stat('inserts'), stat('samples')
local size = redis.call('ZCARD', ORDER)

-- free until min_size is reached; then only while inserts stay within max_diff of samples
local function may_insert()
  return mode == 'ignore' or size + 1 <= cfg.min_size or (inserts + 1) * cfg.spi - samples <= cfg.max_diff
end

if mode == 'probe' then
  if redis.call('ZSCORE', ORDER, ARGV[2]) then return {1} end
  -- inserts pass while either bound holds, and both tighten by one per insert
  local room = math.max(cfg.min_size - size, math.floor((cfg.max_diff + samples) / cfg.spi) - inserts)
  if room < 1 and may_insert() then room = 1 end -- rounding must never hold back what may go in
  return {math.max(0, math.min(room, 1e9))}
end

local n = (#ARGV - 1) / 3
local ids = {}
for i = 1, n do ids[i] = ARGV[2 + (i - 1) * 3] end
local present = {}
for i = 1, n, CHUNK do
  local reply = redis.call('ZMSCORE', ORDER, unpack(ids, i, math.min(i + CHUNK - 1, n)))
  for j = 1, #reply do present[i + j - 1] = reply[j] end
end

local seq = stat('seq')
local order_args, prio_args, tag_args, aside = {}, {}, {}, {}
local by_group = {} -- group signature → {seq, id, seq, id, …}: a batch mostly shares a few groups
local processed, inserted, duplicates, seen = 0, 0, 0, {}
for i = 1, n do
  local base = 2 + (i - 1) * 3
  local id = ids[i]
  if present[i] or seen[id] then
    duplicates = duplicates + 1
  else
    if not may_insert() then break end
    seen[id] = true
    seq, inserts, size, inserted = seq + 1, inserts + 1, size + 1, inserted + 1
    local group, score = ARGV[base + 2], tostring(seq)
    local k = #order_args
    order_args[k + 1] = score; order_args[k + 2] = id
    prio_args[k + 1] = ARGV[base + 1]; prio_args[k + 2] = id
    tag_args[k + 1] = id; tag_args[k + 2] = group
    local members = by_group[group]
    if not members then members = {}; by_group[group] = members end
    members[#members + 1] = score; members[#members + 1] = id
  end
  processed = i
end

local evicted, victims = 0, {}
if inserted > 0 then
  variadic('ZADD', ORDER, order_args, 2)
  if cfg.uses_priority then variadic('ZADD', PRIO, prio_args, 2) end
  variadic('HSET', TAGS, tag_args, 2)
  for group, members in pairs(by_group) do
    variadic('ZADD', P .. 'grp:' .. group, members, 2)
    redis.call('SADD', INDEXES, group)
  end
  local overflow = size - cfg.max_size
  if overflow > 0 then
    if cfg.remover == 'lowest_priority' then
      victims = redis.call('ZRANGE', PRIO, 0, overflow - 1)
    else
      victims = redis.call('ZRANGE', ORDER, 0, overflow - 1)
    end
    evicted = remove_ids(victims)
  end
  redis.call('HSET', STATS, 'seq', seq, 'inserts', inserts)
  redis.call('HINCRBY', STATS, 'evicted', evicted)
end
redis.call('HINCRBY', STATS, 'duplicates', duplicates)

-- what the client's HSET of the whole batch must not change (see the top)
if duplicates == 0 and processed == n and #victims == 0 then return {processed, inserted, duplicates, evicted} end
local noted = {}
for i = 1, n do
  local id = ids[i]
  if not noted[id] then
    noted[id] = true
    if present[i] then
      aside[#aside + 1] = id; aside[#aside + 1] = redis.call('HGET', DATA, id) or ''
    elseif not seen[id] then
      aside[#aside + 1] = id; aside[#aside + 1] = ''
    end
  end
end
for _, id in ipairs(victims) do
  if seen[id] then aside[#aside + 1] = id; aside[#aside + 1] = '' end
end
if #aside > 0 then variadic('HSET', ASIDE, aside, 2) end
return {processed, inserted, duplicates, evicted}
