-- Insert a batch atomically: skip ids already present (a retried push never duplicates), add the
-- rest with their index entries, then evict past max_size. Stops early when the rate limiter says
-- so (Reverb's CanInsert); the client waits and sends the remainder.
-- ARGV: ignore_limiter ('0'|'1'), then per record: id, priority, group signature, payload.
-- Returns {records processed, inserted, duplicates, evicted} or {-1} if the table does not exist.
local cfg = config()
if not cfg then return {-1} end
local ignore_limiter = ARGV[1] == '1'
local n = (#ARGV - 1) / 4
local ids = {}
for i = 1, n do ids[i] = ARGV[2 + (i - 1) * 4] end
local present = {}
for i = 1, n, CHUNK do
  local reply = redis.call('ZMSCORE', ORDER, unpack(ids, i, math.min(i + CHUNK - 1, n)))
  for j = 1, #reply do present[i + j - 1] = reply[j] end
end

local inserts, samples = stat('inserts'), stat('samples')
local size = redis.call('ZCARD', ORDER)
local seq = stat('seq')
local data_args, order_args, prio_args, tag_args = {}, {}, {}, {}
local by_group = {} -- group signature → {seq, id, seq, id, …}: a batch mostly shares a few groups
local processed, inserted, duplicates, seen = 0, 0, 0, {}
for i = 1, n do
  local base = 2 + (i - 1) * 4
  local id = ids[i]
  if present[i] or seen[id] then
    duplicates = duplicates + 1
  else
    -- free until min_size is reached; then only while inserts stay within max_diff of samples
    if not ignore_limiter and size + 1 > cfg.min_size and (inserts + 1) * cfg.spi - samples > cfg.max_diff then
      break
    end
    seen[id] = true
    seq, inserts, size, inserted = seq + 1, inserts + 1, size + 1, inserted + 1
    local group = ARGV[base + 2]
    local k = #data_args
    data_args[k + 1] = id; data_args[k + 2] = ARGV[base + 3]
    order_args[k + 1] = seq; order_args[k + 2] = id
    prio_args[k + 1] = ARGV[base + 1]; prio_args[k + 2] = id
    tag_args[k + 1] = id; tag_args[k + 2] = group
    local members = by_group[group]
    if not members then members = {}; by_group[group] = members end
    members[#members + 1] = seq; members[#members + 1] = id
  end
  processed = i
end

local evicted = 0
if inserted > 0 then
  variadic('HSET', DATA, data_args, 2)
  variadic('ZADD', ORDER, order_args, 2)
  if cfg.uses_priority then variadic('ZADD', PRIO, prio_args, 2) end
  variadic('HSET', TAGS, tag_args, 2)
  for group, members in pairs(by_group) do
    variadic('ZADD', P .. 'grp:' .. group, members, 2)
    redis.call('SADD', INDEXES, group)
  end
  local overflow = size - cfg.max_size
  if overflow > 0 then
    local victims
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
return {processed, inserted, duplicates, evicted}
