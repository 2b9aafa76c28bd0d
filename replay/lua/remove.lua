-- Remove items by id; with ARGV[1] == 'quarantine', move their payloads aside first, so a corrupt
-- record stops being served but is never lost.
-- ARGV: mode ('remove'|'quarantine'), then ids. Returns the number removed.
local quarantine = ARGV[1] == 'quarantine'
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
if quarantine then
  for _, id in ipairs(ids) do
    local payload = redis.call('HGET', DATA, id)
    if payload then redis.call('HSET', QUARANTINE, id, payload) end
  end
end
local removed = remove_ids(ids)
redis.call('HINCRBY', STATS, quarantine and 'quarantined' or 'removed', removed)
return removed
