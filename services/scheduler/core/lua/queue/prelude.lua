-- Loaded in front of every queue script (queue.py has the key layout).
-- ARGV[1] is the key prefix P in every script.
local P = ARGV[1]
local function qkey(c) return P .. 'queue:' .. c end
local function ekey(w) return P .. 'queue:entry:' .. w end
