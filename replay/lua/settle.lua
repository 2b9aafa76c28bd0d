-- The end of an insert's MULTI (see insert.lua), after the client's HSET of the batch's payloads:
-- puts back what insert.lua set aside ('' meaning: this id is not indexed, drop its payload).
-- Returns how many payloads were dropped.
local noted = redis.call('HGETALL', ASIDE)
if #noted == 0 then return 0 end
local drop, restore = {}, {}
for i = 1, #noted, 2 do
  if noted[i + 1] == '' then
    drop[#drop + 1] = noted[i]
  else
    restore[#restore + 1] = noted[i]; restore[#restore + 1] = noted[i + 1]
  end
end
variadic('HDEL', DATA, drop)
variadic('HSET', DATA, restore, 2)
redis.call('DEL', ASIDE)
return #drop
