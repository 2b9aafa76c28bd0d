-- Set priorities of items still in the table (ZADD XX: an evicted id is not brought back).
-- ARGV: priority1, id1, priority2, id2, ... Returns how many changed.
local changed = 0
for i = 1, #ARGV, 2 * CHUNK do
  local part = {unpack(ARGV, i, math.min(i + 2 * CHUNK - 1, #ARGV))}
  changed = changed + redis.call('ZADD', PRIO, 'XX', 'CH', unpack(part))
end
return changed
