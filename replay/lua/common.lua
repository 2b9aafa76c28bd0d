-- Shared by every buffer script (prepended by replay/buffer.py).
-- An item's secondary-index entries form its group signature ("tool=x\nround=1\noutcome=solved\nversion=0");
-- each group is one zset (id → insertion seq), so an insert touches one index, not four, and a filter
-- is the union of the groups whose signature carries every filter tag.
-- KEYS[1] is the table's key prefix, e.g. "imag:{explore}:"; the {hash tag} keeps a table in one slot.
local P = KEYS[1]
local DATA, ORDER, PRIO, TIMES, TAGS = P .. 'data', P .. 'order', P .. 'prio', P .. 'times', P .. 'tags'
local STATS, INDEXES, CONFIG, QUARANTINE = P .. 'stats', P .. 'indexes', P .. 'config', P .. 'quarantine'
local ASIDE = P .. 'aside' -- an insert's duplicates' payloads, from insert.lua to settle.lua within one MULTI
local CHUNK = 1000 -- members per variadic command: Lua's unpack() has a stack limit

-- Run a variadic command over `args` in chunks; returns the concatenated replies of read commands.
local function variadic(cmd, key, args, width)
  local out = {}
  local step = CHUNK * (width or 1)
  for i = 1, #args, step do
    local reply = redis.call(cmd, key, unpack(args, i, math.min(i + step - 1, #args)))
    if type(reply) == 'table' then
      for _, v in ipairs(reply) do out[#out + 1] = v end
    end
  end
  return out
end

local function split_lines(s)
  local out = {}
  for part in string.gmatch(s, '[^\n]+') do out[#out + 1] = part end
  return out
end

-- Does a group signature ("tool=a\nround=1\n…") carry every filter tag?
local function group_matches(group, filters)
  local lines = {}
  for _, tag in ipairs(split_lines(group)) do lines[tag] = true end
  for _, tag in ipairs(filters) do
    if not lines[tag] then return false end
  end
  return true
end

-- Drop items and their group-index entries, in a few variadic commands.
local function remove_ids(ids)
  if #ids == 0 then return 0 end
  local groups = {}
  for i = 1, #ids, CHUNK do
    local reply = redis.call('HMGET', TAGS, unpack(ids, i, math.min(i + CHUNK - 1, #ids)))
    for j = 1, #reply do groups[i + j - 1] = reply[j] end
  end
  local by_group = {}
  for i, id in ipairs(ids) do
    local group = groups[i]
    if group then
      by_group[group] = by_group[group] or {}
      table.insert(by_group[group], id)
    end
  end
  for group, members in pairs(by_group) do
    local key = P .. 'grp:' .. group
    variadic('ZREM', key, members)
    if redis.call('ZCARD', key) == 0 then redis.call('SREM', INDEXES, group) end
  end
  local before = redis.call('ZCARD', ORDER)
  variadic('HDEL', DATA, ids)
  variadic('HDEL', TAGS, ids)
  variadic('HDEL', TIMES, ids)
  variadic('ZREM', ORDER, ids)
  variadic('ZREM', PRIO, ids)
  return before - redis.call('ZCARD', ORDER)
end

local function stat(name)
  return tonumber(redis.call('HGET', STATS, name) or '0')
end

local function config()
  local c = redis.call('HMGET', CONFIG, 'max_size', 'remover', 'spi', 'min_size', 'min_diff', 'max_diff',
    'max_times_sampled', 'uses_priority')
  if not c[1] then return nil end
  return {
    max_size = tonumber(c[1]), remover = c[2], spi = tonumber(c[3]), min_size = tonumber(c[4]),
    min_diff = tonumber(c[5]), max_diff = tonumber(c[6]), max_times_sampled = tonumber(c[7]),
    uses_priority = c[8] == '1',
  }
end
