"""The job store: each job's status and outcome in Redis, written by the API and the workers.

A job is one request's images, of one priority (``inferq.priorities``). The API admits a message's
jobs (``queued``; all refused if one would take its priority's queue past its limit in images), a worker
marks them ``running`` when their batch starts and ``done``, ``failed`` or ``expired`` (its
deadline passed before its batch ran) when it ends, and the first outcome written is final: a
message delivered twice (its worker died before acknowledging it) cannot change an answer a
client may already have read. A client may cancel a queued or running job (``cancelled``, final
like the others): it leaves its counter at once, a worker skips it, or, already running, finds its
outcome taken. A job's record and stored inputs are kept while it is queued or
running, however long that is; its record expires RESULT_TTL after its outcome. Outcomes of jobs an
API process waits for (``POST /recognize``) are also pushed to that process's reply list, one item
per batch.

Each model and priority has a counter of its unfinished jobs' images, which backpressure compares
with the priority's limit, and beside it the hash of those jobs (id -> images) that it adds up:
every script keeps the two in step, and :meth:`JobStore.reconcile` brings the counter back to the
hash after anything else (a job whose finish or record was lost). Every script can run again
without effect (redis-py retries a command that timed out), and finishing, withdrawing and
reconciling run on a Redis at ``maxmemory``, which refuses new admissions.

Beside those, every lane (model and priority) has two counters that only grow, images admitted and
images ended, from which a queued job's place is read (``inferq.drain``), and a job that ends with a
callback is queued for delivery (``inferq.callbacks``): both in the scripts that end jobs, by the
one piece of Lua they share (``_ENDED``).

Each step is one Redis round trip for any number of jobs: the API admits a message's jobs and
pushes the message at once, a worker writes a batch's outcomes at once. The scripts touch several
keys, so the store needs one Redis, not a cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import orjson
import redis

from inferq import keys
from inferq.broker import Envelope, HeldMessages, acking, backlog, bell, tenant_members, tenant_ring
from inferq.lua import Layout
from inferq.priorities import INTERACTIVE, PRIORITIES
from inferq.replication import NotReplicated, ReplicatedWrites
from inferq.tenants import DEFAULT, DEFAULT_TENANT, Tenant

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, EXPIRED = "queued", "running", "done", "failed", "expired"
#: A job a client withdrew (``DELETE /jobs/<id>``): never run if it was queued, its answer
#: discarded if it was running.
CANCELLED = "cancelled"
#: The statuses a job ends in.
FINAL = (DONE, FAILED, EXPIRED, CANCELLED)

# What every script that ends jobs does beside its own work, defined once and prepended to each
# (finishing, withdrawing, taking back; a cancel too): a job that ended counts its images as gone
# from its lane (the monotonic counter of ``inferq.keys.lane_finished``, from which ``inferq.drain``
# tells a queued job what is ahead of it), and a job that reached its final status and has a
# callback has it queued, due now, for the workers' deliverers (``inferq.callbacks``). Separate
# functions: images are counted by what the admission counted, once, by a job's unfinished entry
# (in its lane and, by the record's ``tenant``, in its tenant's counters: ``inferq.keys.tenant_queued``),
# and a callback is queued by the first final status written, and the two can come apart (a job
# delivered again, a job whose record was lost).
_ENDED = """
local function count_ended(lane_finished, images)
  if images > 0 then
    redis.call('INCRBY', lane_finished, images)
  end
end
local function count_tenant_ended(job_key, images)
  local tenant = images > 0 and redis.call('HGET', job_key, 'tenant')
  if tenant then
    local queued = 'TENANT_QUEUED' .. tenant
    if redis.call('DECRBY', queued, images) < 0 then
      redis.call('SET', queued, 0)
    end
    redis.call('INCRBY', 'TENANT_FINISHED' .. tenant, images)
  end
end
local function queue_callback(job_key, job_id, due, now)
  if redis.call('HEXISTS', job_key, 'callback_url') == 1 then
    redis.call('ZADD', due, 'NX', now, job_id)
  end
end
""".replace("TENANT_QUEUED", keys.tenant_queued("")).replace("TENANT_FINISHED", keys.tenant_finished(""))

# KEYS: the model's and priority's queued-images counter and its unfinished-jobs hash, one key per
# job, one inputs hash per job, then the list to push a message onto, its queue's bell and its
# queue's backlog (or none; where the list is the tenant's list of the queue, then the queue's tenant ring and the
# set of its names, ``inferq.broker``),
# then the tenant's queued-items counter and its token bucket, then the lane's admitted-images counter.
# ARGV: max depth, now, priority, job count, model, tenant, the tenant's max queued items and items
# a second (each -1: none), then for each job its id, image count, filenames
# (JSON) and number of stored inputs followed by their names and bytes, then the message (if a queue
# is among KEYS), then a JSON object of job id -> its callback URL, last a JSON object of job id ->
# the reply list its waiter reads (kept in the record, so that a cancel can answer the waiter).
# Answers per job 1 (it fits), 0 (the lane is full), 2 (the tenant's queued items would pass its
# limit) or 3 (its admission rate would); the lane's depth after, the tenant's queued items after,
# and the tokens its bucket holds after (a string; -1 for no rate limit).
# The bucket holds a second's worth of items at most; a job larger than that is admitted from a
# full bucket, which it leaves in debt.
# Each new job's record keeps ``lane_mark``, the lane's admitted images before it.
# In the layout, ``job_keys`` is the job keys, the inputs hashes and the queue's keys (if any), and
# ``job_fields`` each job's fields, then the message (if any).
#
# All or nothing: the jobs are recorded, counted and their message pushed only if every one fits,
# records and inputs before the message, so a worker never sees a job before them. A job already
# recorded is this same admission run again (redis-py retries a command that timed out; job ids are
# unique): it counts as fitting and is neither counted nor written again, and a run that records no
# new job pushes no message. Records and inputs have no expiry: they live until the job finishes.
# Reads come first and the first write is an HSET: at maxmemory Redis refuses a script's first write
# that may grow memory, so a full Redis refuses the whole admission before it wrote anything.
_ADMIT_LAYOUT = Layout(
    "admit", keys=("queued_images", "unfinished"), key_list="job_keys",
    last_keys=("tenant_queued", "bucket", "lane_admitted"),
    args=("max_depth", "now", "priority", "jobs", "model", "tenant", "tenant_max", "rate"), arg_list="job_fields",
    last_args=("callbacks", "waiting"), numbers={"max_depth", "jobs", "tenant_max", "rate"})
_ADMIT = _ADMIT_LAYOUT.script("""
local depth = tonumber(redis.call('GET', queued_images) or '0')
local tenant_depth = tonumber(redis.call('GET', tenant_queued) or '0')
local tokens = -1
if rate >= 0 then
  local held, at = unpack(redis.call('HMGET', bucket, 'tokens', 'at'))
  tokens = rate
  if held then
    tokens = math.min(rate, tonumber(held) + math.max(0, tonumber(now) - tonumber(at)) * rate)
  end
end
local fits, new, offsets, added, all, a = {}, {}, {}, 0, true, job_fields_offset + 1
waiting = cjson.decode(waiting)
for j = 1, jobs do
  local n, stored = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 3])
  offsets[j] = a
  if redis.call('EXISTS', KEYS[job_keys_offset + j]) == 1 then
    fits[j] = 1
  elseif depth + added + n > max_depth then
    fits[j] = 0
  elseif tenant_max >= 0 and tenant_depth + added + n > tenant_max then
    fits[j] = 2
  elseif rate >= 0 and tokens - added < math.min(n, rate) then
    fits[j] = 3
  else
    fits[j] = 1
    new[#new + 1] = j
    added = added + n
  end
  if fits[j] ~= 1 then
    all = false
  end
  a = a + 4 + 2 * stored
end
local left = rate >= 0 and tostring(tokens - added) or '-1'
if not all or #new == 0 then
  return {fits, depth + added, tenant_depth + added, left}
end
for _, j in ipairs(new) do
  local o = offsets[j]
  local id, n, stored = ARGV[o], ARGV[o + 1], tonumber(ARGV[o + 3])
  local job = KEYS[job_keys_offset + j]
  redis.call('HSET', job, 'status', 'queued', 'n', n, 'created_at', now, 'priority', priority,
             'model', model, 'filenames', ARGV[o + 2], 'tenant', tenant)
  if waiting[id] then
    redis.call('HSET', job, 'reply_to', waiting[id])
  end
  for i = 1, stored do
    redis.call('HSET', KEYS[job_keys_offset + jobs + j], ARGV[o + 2 + 2 * i], ARGV[o + 3 + 2 * i])
  end
  redis.call('HSET', unfinished, id, n)
end
depth = redis.call('INCRBY', queued_images, added)
tenant_depth = redis.call('INCRBY', tenant_queued, added)
redis.call('INCRBY', 'TENANT_ADMITTED' .. tenant, added)
if rate >= 0 then
  redis.call('HSET', bucket, 'tokens', left, 'at', now)
  redis.call('EXPIRE', bucket, 3600)
end
-- After the jobs' keys and inputs: the queue, its bell and backlog, then its tenant ring and names.
local queue = job_keys_offset + 2 * jobs
if job_keys_count > 2 * jobs then
  redis.call('LPUSH', KEYS[queue + 1], ARGV[a])
  redis.call('LPUSH', KEYS[queue + 2], 1)
  redis.call('LPUSH', KEYS[queue + 3], 1)
  -- The tenant onto its queue's ring, once: the claim takes it off when its list is empty.
  if job_keys_count > 2 * jobs + 3 and redis.call('SADD', KEYS[queue + 5], tenant) == 1 then
    redis.call('LPUSH', KEYS[queue + 4], tenant)
  end
end
local mark = tonumber(redis.call('GET', lane_admitted) or '0')
callbacks = cjson.decode(callbacks)
for _, j in ipairs(new) do
  redis.call('HSET', KEYS[job_keys_offset + j], 'lane_mark', mark)
  mark = mark + tonumber(ARGV[offsets[j] + 1])
  local url = callbacks[ARGV[offsets[j]]]
  if url then
    redis.call('HSET', KEYS[job_keys_offset + j], 'callback_url', url, 'callback_status', 'pending',
               'callback_attempts', 0)
  end
end
redis.call('INCRBY', lane_admitted, added)
return {fits, depth, tenant_depth, left}
""".replace("TENANT_ADMITTED", keys.tenant_admitted("")))

# Every script that changes a job's status or progress says so on the job's channel
# (``keys.job_events``), after its write: what the API's long polls and event streams wake on
# (``api.queue.job_events``). A PUBLISH is no write: Redis never refuses it at maxmemory. One function,
# put before each such script's own text, so that every change (a cancel's too) is announced alike.
_PUBLISH_JOB_EVENT = f"""
local function publish_job_event(job_key)
  local id = string.sub(job_key, {len(keys.job(""))} + 1)
  local status, n, done = unpack(redis.call('HMGET', job_key, 'status', 'n', 'items_done'))
  if status then
    redis.call('PUBLISH', '{keys.job_events("")}' .. id,
               cjson.encode({{job_id = id, status = status, items = tonumber(n), items_done = tonumber(done)}}))
  end
end
"""

# A batch's start in one round trip (:meth:`JobStore.start`): marks its queued jobs running, each
# adding its wait in the queue to its tenant's (``inferq.keys.tenant_waits``), and answers the
# positions (from 1) of those cancelled, so that a worker skips them without a look of its own.
_START_LAYOUT = Layout("start", key_list="jobs", args=("now",))
_START = _START_LAYOUT.script(_PUBLISH_JOB_EVENT + """
local cancelled = {}
for i = 1, jobs_count do
  local job = KEYS[jobs_offset + i]
  local status = redis.call('HGET', job, 'status')
  if status == 'queued' then
    redis.call('HSET', job, 'status', 'running', 'started_at', now)
    publish_job_event(job)
    local tenant, created = unpack(redis.call('HMGET', job, 'tenant', 'created_at'))
    if tenant and created then
      local waits = 'TENANT_WAITS' .. tenant
      redis.call('HINCRBY', waits, 'jobs', 1)
      redis.call('HINCRBYFLOAT', waits, 'seconds', math.max(0, tonumber(now) - tonumber(created)))
    end
  elseif status == 'cancelled' then
    cancelled[#cancelled + 1] = i
  end
end
return cancelled
""".replace("TENANT_WAITS", keys.tenant_waits("")))

# KEYS: running jobs' keys. ARGV: each job's items done so far. Written while the job runs (a
# job that ended, or whose start was refused, is left as it is), only forward: what a worker
# reports after each model call of a job that takes several.
_PROGRESS_LAYOUT = Layout("progress", key_list="jobs", arg_list="items_done")
_PROGRESS = _PROGRESS_LAYOUT.script(_PUBLISH_JOB_EVENT + """
for i = 1, jobs_count do
  local job, done = KEYS[jobs_offset + i], tonumber(ARGV[items_done_offset + i])
  if redis.call('HGET', job, 'status') == 'running'
     and done > tonumber(redis.call('HGET', job, 'items_done') or '0') then
    redis.call('HSET', job, 'items_done', done)
    publish_job_event(job)
  end
end
""")

# KEYS (``batch``): the queued-images counters the jobs count in (one a model and priority), their
# unfinished-jobs hashes in the same order, one key per job, the reply lists named by the jobs,
# then the inputs hashes to delete, then each counter's lane-finished counter (in the counters'
# order); last the set of due callbacks. ARGV: ttl, now, counter count, job count, then per job
# (``outcomes``): status, image count, outcome JSON, the position of its reply list in ``batch``
# (0 when nobody waits), its id and the position of its counter (from 1); last, the number of
# inputs hashes. Every reply list gets one item: a JSON list of [job id, outcome] pairs.
#
# What frees memory comes first. Redis refuses at maxmemory only a script's first write that may
# grow memory (one that has written already is never stopped halfway), and HDEL and DEL do not
# grow it: so the outcomes are written however full Redis is, and the inputs' megabytes are freed
# before them. DEL, not UNLINK: a few large strings are freed at once either way, and the memory
# must be back before the next admission is measured against maxmemory. A job counts down its
# counter by its unfinished entry, as it leaves the hash: by what its admission counted, whatever
# image count the worker passes (kept in the layout for the log), and once however often it is
# delivered.
_FINISH_LAYOUT = Layout("finish", key_list="batch", last_keys=("callbacks_due",),
                        args=("ttl", "now", "counters", "jobs"), arg_list="outcomes", last_args=("stored",),
                        numbers={"counters", "jobs", "stored"})
_FINISH = _FINISH_LAYOUT.script(_PUBLISH_JOB_EVENT + _ENDED + """
local lanes = batch_offset + batch_count - counters
-- Each job counts down by what its admission counted (its unfinished entry), whatever a message
-- says, and only once: a batch delivered again finds no entry left.
local left = {}
for j = 1, jobs do
  local a = outcomes_offset + 1 + (j - 1) * 6
  local unfinished = KEYS[batch_offset + counters + tonumber(ARGV[a + 5])]
  left[j] = tonumber(redis.call('HGET', unfinished, ARGV[a + 4]) or '0')
  redis.call('HDEL', unfinished, ARGV[a + 4])
end
for i = lanes - stored + 1, lanes do
  redis.call('DEL', KEYS[i])
end
local finished, replies = {}, {}
for j = 1, jobs do
  local key, a = KEYS[batch_offset + 2 * counters + j], outcomes_offset + 1 + (j - 1) * 6
  local status = redis.call('HGET', key, 'status')
  if status ~= 'done' and status ~= 'failed' and status ~= 'expired' and status ~= 'cancelled' then
    redis.call('HSET', key, 'status', ARGV[a], 'outcome', ARGV[a + 2], 'finished_at', now)
    publish_job_event(key)
    queue_callback(key, ARGV[a + 4], callbacks_due, now)
    local reply = tonumber(ARGV[a + 3])
    if reply > 0 then
      local pair = '[' .. cjson.encode(ARGV[a + 4]) .. ',' .. ARGV[a + 2] .. ']'
      replies[reply] = (replies[reply] and replies[reply] .. ',' or '') .. pair
    end
  end
  -- Final or not, the record expires now: a job finished before keeps its first outcome's expiry
  -- at the latest, and one whose record was lost is answered and then forgotten like the others.
  if redis.call('TTL', key) == -1 then
    redis.call('EXPIRE', key, ttl)
    -- The job's Idempotency-Key lives as long as its record. Named by the record, not in KEYS:
    -- the store needs one Redis already.
    local idempotency = redis.call('HGET', key, 'idempotency_key')
    if idempotency then
      redis.call('EXPIRE', idempotency, ttl)
    end
  end
  count_tenant_ended(key, left[j])
  if left[j] > 0 then
    local counter = tonumber(ARGV[a + 5])
    finished[counter] = (finished[counter] or 0) + left[j]
  end
end
for reply, items in pairs(replies) do
  redis.call('RPUSH', KEYS[batch_offset + reply], '[' .. items .. ']')
  redis.call('EXPIRE', KEYS[batch_offset + reply], ttl)
end
for counter, images in pairs(finished) do
  -- Never below zero: jobs admitted under another counter (before an upgrade) must not leave
  -- headroom that was never taken.
  if redis.call('DECRBY', KEYS[batch_offset + counter], images) < 0 then
    redis.call('SET', KEYS[batch_offset + counter], 0)
  end
  count_ended(KEYS[lanes + counter], images)
end
""")

# KEYS: the queue and the jobs' counter, unfinished hash, records and inputs (``job_keys``), and
# lane-finished counter as for _WITHDRAW. ARGV: the message, then the job ids. Takes the message off
# its queue and withdraws its jobs, or, if a worker has claimed it already, leaves everything as it
# is. Answers 1 if it took it back.
_TAKE_BACK_LAYOUT = Layout("take_back", keys=("queue", "queued_images", "unfinished"), key_list="job_keys",
                           last_keys=("lane_finished",), args=("message",), arg_list="job_ids")
_TAKE_BACK = _TAKE_BACK_LAYOUT.script(_ENDED + """
if redis.call('LREM', queue, 1, message) == 0 then
  return 0
end
local jobs = job_ids_count
for j = 1, jobs do
  local id, job = ARGV[job_ids_offset + j], KEYS[job_keys_offset + j]
  local n = redis.call('HGET', unfinished, id)
  if n then
    redis.call('HDEL', unfinished, id)
    if redis.call('DECRBY', queued_images, tonumber(n)) < 0 then
      redis.call('SET', queued_images, 0)
    end
    count_ended(lane_finished, tonumber(n))
    count_tenant_ended(job, tonumber(n))
  end
  redis.call('DEL', job, KEYS[job_keys_offset + jobs + j])
end
return 1
""")

# KEYS: the counter and unfinished-jobs hash of the jobs' model and priority, one key per job, one
# inputs hash per job (``job_keys``), then the lane-finished counter. ARGV: the job ids. Deletes
# are the first writes, so this runs at maxmemory too; a job already gone is not counted down again.
_WITHDRAW_LAYOUT = Layout("withdraw", keys=("queued_images", "unfinished"), key_list="job_keys",
                          last_keys=("lane_finished",), arg_list="job_ids")
_WITHDRAW = _WITHDRAW_LAYOUT.script(_ENDED + """
local jobs, images = job_ids_count, 0
for j = 1, jobs do
  local id, job = ARGV[job_ids_offset + j], KEYS[job_keys_offset + j]
  local n = redis.call('HGET', unfinished, id)
  if n then
    redis.call('HDEL', unfinished, id)
    images = images + tonumber(n)
    count_tenant_ended(job, tonumber(n))
  end
  redis.call('DEL', job, KEYS[job_keys_offset + jobs + j])
end
if images > 0 and redis.call('DECRBY', queued_images, images) < 0 then
  redis.call('SET', queued_images, 0)
end
count_ended(lane_finished, images)
return images
""")

# KEYS: a model's and priority's unfinished-jobs hash. ARGV: the prefix of job keys, then job ids
# (some of the hash's). Drops those whose record is final or gone: their finish was lost, or
# counted under another counter. Answers how many it dropped.
_FORGET_ENDED_LAYOUT = Layout("forget_ended", keys=("unfinished",), args=("job_prefix",), arg_list="job_ids")
_FORGET_ENDED = _FORGET_ENDED_LAYOUT.script("""
local dropped = 0
for i = job_ids_offset + 1, job_ids_offset + job_ids_count do
  local status = redis.call('HGET', job_prefix .. ARGV[i], 'status')
  if status ~= 'queued' and status ~= 'running' then
    dropped = dropped + redis.call('HDEL', unfinished, ARGV[i])
  end
end
return dropped
""")

# KEYS: a model's and priority's counter and its unfinished-jobs hash. Sets the counter to what the
# hash adds up to, whatever drifted. A deletion first, so that the SET is not a first write, which
# Redis refuses at maxmemory.
_RECOUNT_LAYOUT = Layout("recount", keys=("queued_images", "unfinished"))
_RECOUNT = _RECOUNT_LAYOUT.script("""
local total = 0
for _, images in ipairs(redis.call('HVALS', unfinished)) do
  total = total + tonumber(images)
end
-- A lane that never had work keeps no counter (absent reads as 0), so a recount writes none.
if total > 0 or redis.call('EXISTS', queued_images) == 1 then
  redis.call('SET', queued_images, total)
end
return total
""")

# KEYS: the unfinished-jobs hashes of every lane (of every model), then the hash of the tenants
# the API announced (``inferq.keys.TENANT_WEIGHTS``). ARGV: the prefix of job records, the prefix of
# tenants' queued-items counters. Sets each tenant's counter to the items of its jobs those hashes
# hold (by each record's ``tenant``, as the scripts that end jobs count them down), whatever
# drifted: an announced tenant with none, to none. In one script, so that no admission or finish
# comes between the count and the write; reading a record per unfinished job, it is meant for now
# and then. Answers ``[tenant, counter before, counter after, ...]`` of the counters it changed.
# Deletions before sets: at maxmemory Redis refuses a script at its first write that may grow
# memory, and a counter brought to zero is deleted.
_RECOUNT_TENANTS_LAYOUT = Layout("recount_tenants", key_list="lanes", last_keys=("tenant_weights",),
                                 args=("job_prefix", "queued_prefix"))
_RECOUNT_TENANTS = _RECOUNT_TENANTS_LAYOUT.script("""
local totals = {}
for i = lanes_offset + 1, lanes_offset + lanes_count do
  local entries = redis.call('HGETALL', KEYS[i])
  for j = 1, #entries, 2 do
    local tenant = redis.call('HGET', job_prefix .. entries[j], 'tenant')
    if tenant then
      totals[tenant] = (totals[tenant] or 0) + tonumber(entries[j + 1])
    end
  end
end
for _, tenant in ipairs(redis.call('HKEYS', tenant_weights)) do
  totals[tenant] = totals[tenant] or 0
end
local changed, sets = {}, {}
for tenant, total in pairs(totals) do
  local key = queued_prefix .. tenant
  local was = redis.call('GET', key)
  if tonumber(was or '0') ~= total or (was and total == 0) then
    changed[#changed + 1] = {tenant, was or '0', tostring(total)}
    if total == 0 then
      redis.call('DEL', key)
    else
      sets[#sets + 1] = {key, total}
    end
  end
end
for _, set in ipairs(sets) do
  redis.call('SET', set[1], set[2])
end
local flat = {}
for _, change in ipairs(changed) do
  flat[#flat + 1], flat[#flat + 2], flat[#flat + 3] = change[1], change[2], change[3]
end
return flat
""")

# KEYS: the job's record, its inputs hash, the counter and unfinished-jobs hash of its model and
# priority, the reply list its waiter reads, its lane's finished-images counter, the due callbacks.
# A cancelled job counts as ended in its lane, and its callback is queued, as a finished one's.
# ARGV: ttl, now, job id, the outcome JSON, 1 if a waiter reads that list (else 0: the key is a
# placeholder, so that KEYS keeps its layout).
# Answers the status the job had: a queued or running one is now cancelled; any other (final, or
# cancelled already) is left as it is, and a job without a record answers nothing.
#
# The job leaves its counter at once, by what its admission counted, and only once (its unfinished
# entry goes with it): a worker's later finish of it counts nothing down and, finding it cancelled,
# writes no outcome over it. Deletes come first, so that a Redis at maxmemory cancels too.
_CANCEL_LAYOUT = Layout("cancel", keys=("job", "inputs", "queued_images", "unfinished", "reply_list", "lane_finished",
                                         "callbacks_due"),
                        args=("ttl", "now", "job_id", "outcome", "waiting"))
_CANCEL = _CANCEL_LAYOUT.script(_PUBLISH_JOB_EVENT + _ENDED + """
local status = redis.call('HGET', job, 'status')
if not status then
  return false
end
if status ~= 'queued' and status ~= 'running' then
  return status
end
local n = tonumber(redis.call('HGET', unfinished, job_id) or '0')
redis.call('HDEL', unfinished, job_id)
redis.call('DEL', inputs)
if n > 0 and redis.call('DECRBY', queued_images, n) < 0 then
  redis.call('SET', queued_images, 0)
end
count_ended(lane_finished, n)
count_tenant_ended(job, n)
redis.call('HSET', job, 'status', 'cancelled', 'outcome', outcome, 'finished_at', now)
redis.call('EXPIRE', job, ttl)
publish_job_event(job)
queue_callback(job, job_id, callbacks_due, now)
local idempotency = redis.call('HGET', job, 'idempotency_key')
if idempotency then
  redis.call('EXPIRE', idempotency, ttl)
end
if waiting == '1' then
  redis.call('RPUSH', reply_list, '[[' .. cjson.encode(job_id) .. ',' .. outcome .. ']]')
  redis.call('EXPIRE', reply_list, ttl)
end
return status
""")

# KEYS: job records. Answers the positions (from 1) of those cancelled: one command for a batch,
# however many jobs it holds.
_CANCELLED_LAYOUT = Layout("cancelled", key_list="jobs")
_CANCELLED = _CANCELLED_LAYOUT.script("""
local found = {}
for i = 1, jobs_count do
  if redis.call('HGET', KEYS[jobs_offset + i], 'status') == 'cancelled' then
    found[#found + 1] = i
  end
end
return found
""")

# Idempotency keys (``api.queue.idempotency``): each a JSON {fingerprint, job_id, state}, ``pending`` while
# its first request is being admitted (expiring, so that a request that died frees it), then
# ``bound`` to the job, living and expiring with the job's record.
#
# KEYS: the key. ARGV: the request's fingerprint, the job id it would create, how long (ms) a
# pending key holds, the prefix of job keys. Reserves the key for this request unless another holds
# it (a bound key whose job's record is gone holds nothing). Answers {state, job id, fingerprint}
# of whoever holds it: this request's own id if it was reserved now.
_RESERVE_KEY_LAYOUT = Layout("reserve_key", keys=("key",), args=("fingerprint", "job_id", "pending_ms", "job_prefix"))
_RESERVE_KEY = _RESERVE_KEY_LAYOUT.script("""
local raw = redis.call('GET', key)
if raw then
  local held = cjson.decode(raw)
  if held.state ~= 'bound' or redis.call('EXISTS', job_prefix .. held.job_id) == 1 then
    return {held.state, held.job_id, held.fingerprint}
  end
end
redis.call('SET', key, cjson.encode({fingerprint = fingerprint, job_id = job_id, state = 'pending'}),
           'PX', pending_ms)
return {'pending', job_id, fingerprint}
""")

# KEYS: the key, the record of the job it was reserved for. ARGV: the job id, the fingerprint. Once
# the request that reserved the key is over: a key whose job was admitted is bound to it (and
# expires with its record, now or when the job ends); one whose job was not is freed, so that a
# retry can create it. A key another request holds by now is left alone. Answers 1 if bound.
_SETTLE_KEY_LAYOUT = Layout("settle_key", keys=("key", "job"), args=("job_id", "fingerprint"))
_SETTLE_KEY = _SETTLE_KEY_LAYOUT.script("""
local raw = redis.call('GET', key)
if not raw or cjson.decode(raw).job_id ~= job_id then
  return 0
end
if redis.call('EXISTS', job) == 0 then
  redis.call('DEL', key)
  return 0
end
redis.call('SET', key, cjson.encode({fingerprint = fingerprint, job_id = job_id, state = 'bound'}))
redis.call('HSET', job, 'idempotency_key', key)
local ttl = redis.call('PTTL', job)
if ttl > 0 then
  redis.call('PEXPIRE', key, ttl)
end
return 1
""")


# KEYS: a tenant's list of a queue, the queue's bell, its tenant ring, the set of its names and its
# backlog. ARGV: the message, the tenant. What the admission script does with a tenant's message.
_PUSH_TENANT_LAYOUT = Layout("push_tenant", keys=("queue", "bell", "ring", "members", "backlog"),
                             args=("message", "tenant"))
_PUSH_TENANT = _PUSH_TENANT_LAYOUT.script("""
redis.call('LPUSH', queue, message)
redis.call('LPUSH', bell, 1)
redis.call('LPUSH', backlog, 1)
if redis.call('SADD', members, tenant) == 1 then
  redis.call('LPUSH', ring, tenant)
end
""")


class QueueFull(Exception):
    def __init__(self, priority: str, depth: int, model: str | None = None, *, images: int = 0) -> None:
        """``depth``: the queue's images with the work that fit; ``images``: those of the refused job."""
        super().__init__(f"{depth} {priority} items are queued" + (f" for model {model!r}" if model else ""))
        self.priority = priority
        self.depth = depth
        self.model = model
        self.images = images


class TenantOverQuota(Exception):
    """A tenant's work refused for its own limits (``inferq.tenants``): ``limit`` is
    :data:`QUEUED_LIMIT` or :data:`RATE_LIMIT`."""

    def __init__(self, tenant: Tenant, limit: str, *, queued: int, images: int, tokens: float | None = None) -> None:
        """``queued``: the tenant's items queued with the work that fit; ``images``: those of the
        refused job; ``tokens``: what its admission bucket held (rate refusals)."""
        what = (f"{queued} of its {tenant.max_queued_items} items are queued" if limit == QUEUED_LIMIT
                else f"it may queue {tenant.max_items_per_s:g} items a second")
        super().__init__(f"tenant {tenant.name!r} is over its quota: {what}")
        self.tenant = tenant
        self.limit = limit
        self.queued = queued
        self.images = images
        self.tokens = tokens

    @property
    def excess(self) -> float:
        """Items that must drain (queued limit) or be refilled (rate) for the refused job to fit."""
        if self.limit == QUEUED_LIMIT:
            return self.queued + self.images - (self.tenant.max_queued_items or 0)
        rate = self.tenant.max_items_per_s or 0
        return min(self.images, rate) - (self.tokens or 0)


QUEUED_LIMIT, RATE_LIMIT = "max_queued_items", "max_items_per_s"
#: A refusal for the lane's own limit (``QueueFull``), as a tenant's refusals are counted.
QUEUE_FULL = "queue_full"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a job ended: the model's answer for its items, or one error for all of them.

    An answer is ``{"model_version": n, "outputs": {name: values}}``, each output's values one per
    item (a worker writes NumPy arrays, read back as lists).
    """

    status: str
    answer: dict | None = None
    error: str | None = None

    @classmethod
    def done(cls, answer: dict) -> Outcome:
        return cls(DONE, answer=answer)

    @classmethod
    def failed(cls, error: str) -> Outcome:
        return cls(FAILED, error=error)

    @classmethod
    def expired(cls, error: str) -> Outcome:
        return cls(EXPIRED, error=error)

    @classmethod
    def cancelled(cls, error: str) -> Outcome:
        return cls(CANCELLED, error=error)

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY).decode()

    def to_dict(self) -> dict:
        if self.status == DONE:
            return {"answer": self.answer}
        if self.status == CANCELLED:
            return {"error": self.error, "cancelled": True}
        return {"error": self.error, "expired": True} if self.status == EXPIRED else {"error": self.error}

    @classmethod
    def from_dict(cls, data: dict) -> Outcome:
        if "answer" in data:
            return cls.done(data["answer"])
        if data.get("cancelled"):
            return cls.cancelled(data["error"])
        return cls.expired(data["error"]) if data.get("expired") else cls.failed(data["error"])


@dataclasses.dataclass(frozen=True)
class CallbackState:
    """Where a job's final record is POSTed, and how that went: ``pending`` (the job has not ended,
    or its delivery is being tried), ``delivered`` (a 2xx answered) or ``failed`` (past
    CALLBACK_MAX_ATTEMPTS or CALLBACK_MAX_AGE_S). ``attempts``: the POSTs that got an answer or an
    error."""

    url: str
    status: str
    attempts: int
    last_error: str | None

    @classmethod
    def from_fields(cls, fields: Mapping[str, bytes]) -> CallbackState | None:
        if "callback_url" not in fields:
            return None
        error = fields.get("callback_error", b"").decode()
        return cls(fields["callback_url"].decode(), fields.get("callback_status", b"pending").decode(),
                   int(fields.get("callback_attempts", 0)), error or None)

    def to_dict(self) -> dict[str, object]:
        return {"url": self.url, "status": self.status, "attempts": self.attempts, "last_error": self.last_error}


@dataclasses.dataclass(frozen=True)
class JobRecord:
    job_id: str
    status: str
    priority: str
    #: The model the job is for (jobs admitted before models had names: None).
    model: str | None
    filenames: list[str]
    created_at: float | None
    started_at: float | None
    finished_at: float | None
    outcome: Outcome | None
    #: Items the model has answered while the job runs (a worker's progress reports).
    items_done: int = 0
    #: The lane's admitted images before this job (jobs admitted before lanes were counted: None).
    lane_mark: int | None = None
    #: Its callback's URL and delivery (``inferq.callbacks``), if it has one.
    callback: CallbackState | None = None
    #: Whose job it is (``inferq.tenants``; jobs admitted before tenants: ``default``).
    tenant: str = DEFAULT_TENANT


@dataclasses.dataclass(frozen=True)
class HeldKey:
    """Who holds an idempotency key: ``pending`` while its request is admitted, then ``bound``."""

    state: str
    job_id: str
    fingerprint: str

    @property
    def bound(self) -> bool:
        return self.state == "bound"


@dataclasses.dataclass(frozen=True)
class Finished:
    """A job's outcome as a worker hands it to :meth:`JobStore.finish`."""

    job_id: str
    count: int
    model: str
    priority: str
    #: The API process waiting for it, if one is.
    reply_to: str | None
    outcome: Outcome


class JobStore:
    def __init__(self, client: redis.Redis, *, result_ttl_s: int, depth_limits: Mapping[str, int],
                 replicas: int = 0, replica_timeout_ms: int = 500) -> None:
        """``depth_limits``: for each priority, the queued images past which its new work is refused.
        ``replicas``: how many replicas must hold a job's admission and message before ``admit`` and
        ``enqueue`` return, waiting up to ``replica_timeout_ms`` for them (``inferq.replication``)."""
        self._redis = client
        self._writes = ReplicatedWrites(client, replicas=replicas, timeout_ms=replica_timeout_ms)
        self._ttl = result_ttl_s
        self._depth_limits = dict(depth_limits)
        self._admit = client.register_script(_ADMIT)
        self._start = client.register_script(_START)
        self._progress = client.register_script(_PROGRESS)
        self._finish = client.register_script(_FINISH)
        self._finish_acking = client.register_script(acking(_FINISH))
        self._withdraw = client.register_script(_WITHDRAW)
        self._take_back = client.register_script(_TAKE_BACK)
        self._forget_ended = client.register_script(_FORGET_ENDED)
        self._recount = client.register_script(_RECOUNT)
        self._recount_tenants = client.register_script(_RECOUNT_TENANTS)
        self._cancel = client.register_script(_CANCEL)
        self._cancelled = client.register_script(_CANCELLED)
        self._reserve_key = client.register_script(_RESERVE_KEY)
        self._settle_key = client.register_script(_SETTLE_KEY)

    def admit(self, jobs: Sequence[tuple[str, Sequence[str]]], *, model: str, priority: str,
              enqueue: Envelope | None = None,
              stored_inputs: Mapping[str, Mapping[str, bytes]] | None = None,
              callbacks: Mapping[str, str] | None = None,
              reply_to: Mapping[str, str] | None = None,
              tenant: Tenant = DEFAULT) -> list[int | TenantOverQuota | None]:
        """Record new queued jobs (id, filenames) of ``model`` and ``priority`` of ``tenant``, all of
        them or none.

        For each job: None if it fits in its queue, else the queue's depth in images once the
        jobs that fit would be in, or :class:`TenantOverQuota` where it would take ``tenant`` past
        its limits. The jobs are admitted only if every one fits; otherwise nothing
        is written, and the jobs that fit may be admitted again on their own (with their own
        message). ``reply_to`` (job id -> listener) names who waits for a job, so that cancelling it
        answers them. ``stored_inputs`` (job id -> input name -> bytes) are the inputs that travel
        beside the jobs' message (``inferq.messages``), stored with the jobs. ``enqueue`` is the
        message carrying these jobs, pushed onto its queue (with its bell) in the same script if
        they are admitted. Admitting jobs already admitted (a retry) admits, counts and pushes
        nothing again, and answers them as fitting. ``callbacks`` (job id -> URL, checked
        before) are the jobs' callbacks, POSTed when they end (``inferq.callbacks``).

        If the replicas asked for do not acknowledge the admission in time, the message is taken
        back off its queue with its jobs (:meth:`take_back`) and :class:`NotReplicated` raised: a
        refusal always means not queued. If a worker claimed the message first, the jobs are
        running and the admission stands (a failover may then lose it). Either way it is logged and
        counted (:meth:`unreplicated_admissions`).
        """
        stored_inputs = stored_inputs or {}
        callbacks = callbacks or {}
        job_keys = [*(keys.job(job_id) for job_id, _ in jobs), *(keys.job_inputs(job_id) for job_id, _ in jobs)]
        job_fields: list[object] = []
        for job_id, filenames in jobs:
            stored = stored_inputs.get(job_id, {})
            job_fields += [job_id, len(filenames), json.dumps(list(filenames)), len(stored)]
            for name, data in stored.items():
                job_fields += [name, data]
        if enqueue is not None:
            job_keys += [enqueue.queue_key, bell(enqueue.lane), backlog(enqueue.lane)]
            if enqueue.tenant is not None:
                assert enqueue.tenant == tenant.name, "a message carries its own tenant's jobs"
                job_keys += [tenant_ring(enqueue.lane), tenant_members(enqueue.lane)]
            job_fields.append(enqueue.raw)
        command = _ADMIT_LAYOUT.command(
            queued_images=keys.queued_images(model, priority), unfinished=keys.unfinished(model, priority),
            job_keys=job_keys, tenant_queued=keys.tenant_queued(tenant.name),
            bucket=keys.tenant_bucket(tenant.name), lane_admitted=keys.lane_admitted(model, priority),
            max_depth=self._depth_limits[priority], now=time.time(), priority=priority, jobs=len(jobs), model=model,
            tenant=tenant.name, tenant_max=-1 if tenant.max_queued_items is None else tenant.max_queued_items,
            rate=-1 if tenant.max_items_per_s is None else repr(tenant.max_items_per_s), job_fields=job_fields,
            # An object, not an array: cjson reads an empty table as either.
            callbacks=json.dumps({job_id: callbacks[job_id] for job_id, _ in jobs if job_id in callbacks},
                                 separators=(",", ":")) if callbacks else "{}",
            waiting=json.dumps({job_id: keys.replies(listener) for job_id, listener in (reply_to or {}).items()}))

        def run_script(pipe: redis.client.Pipeline) -> None:
            pipe.evalsha(self._admit.sha, *command)

        try:
            try:
                [(fits, depth, tenant_depth, tokens)] = self._writes.execute(run_script)
            except redis.exceptions.NoScriptError:  # Redis restarted (or failed over) and forgot it
                self._redis.script_load(self._admit.script)
                [(fits, depth, tenant_depth, tokens)] = self._writes.execute(run_script)
        except NotReplicated as shortfall:
            [(fits, depth, tenant_depth, tokens)] = shortfall.replies
            with contextlib.suppress(redis.RedisError):  # the count is for operators
                self._redis.incr(keys.UNREPLICATED_ADMISSIONS)
            taken_back = False
            if enqueue is not None and all(fit == 1 for fit in fits):
                try:
                    taken_back = self.take_back(enqueue, [job_id for job_id, _ in jobs], model=model,
                                                priority=priority)
                except redis.RedisError as exc:  # then the jobs are queued: answered as admitted
                    log.warning("could not take back an unreplicated admission: %s", exc)
            if taken_back:
                log.warning("admission of %d %s jobs of model %r not replicated, taken back: %s",
                            len(jobs), priority, model, shortfall)
                raise
            log.warning("admission of %d %s jobs of model %r not replicated, and is queued: %s",
                        len(jobs), priority, model, shortfall)
        refusals: list[int | TenantOverQuota | None] = []
        for (_, filenames), fit in zip(jobs, fits, strict=True):
            if fit == 1:
                refusals.append(None)
            elif fit == 0:
                refusals.append(int(depth))
            else:
                refusals.append(TenantOverQuota(tenant, QUEUED_LIMIT if fit == 2 else RATE_LIMIT,
                                                queued=int(tenant_depth), images=len(filenames),
                                                tokens=float(tokens)))
        return refusals

    def unreplicated_admissions(self) -> int:
        """Admissions the replicas did not acknowledge in time, since this Redis's data began."""
        return int(self._redis.get(keys.UNREPLICATED_ADMISSIONS) or 0)

    def enqueue(self, message: Envelope) -> None:
        """Push a message of jobs admitted before, with its bell. Not for the API's path: a retried
        push queues the message twice (its jobs' first outcome is final, but they run twice)."""
        def push(pipe: redis.client.Pipeline) -> None:
            if message.tenant is not None:  # its list, its bell and its tenant on the ring at once
                pipe.eval(_PUSH_TENANT, *_PUSH_TENANT_LAYOUT.command(
                    queue=message.queue_key, bell=bell(message.lane), ring=tenant_ring(message.lane),
                    members=tenant_members(message.lane), backlog=backlog(message.lane), message=message.raw,
                    tenant=message.tenant))
                return
            # Not a transaction: the message goes first, and one left without its bell is still
            # found, at a worker's next wait timeout.
            pipe.lpush(message.queue_key, message.raw)
            pipe.lpush(bell(message.queue_key), 1)
            pipe.lpush(backlog(message.queue_key), 1)

        self._writes.execute(push)

    def take_back(self, message: Envelope, job_ids: Sequence[str], *, model: str, priority: str) -> bool:
        """Take ``message`` off its queue and withdraw its jobs, unless a worker has claimed it:
        then nothing changes. Answers whether it was taken back."""
        return bool(_TAKE_BACK_LAYOUT.call(
            self._take_back, queue=message.queue_key, queued_images=keys.queued_images(model, priority),
            unfinished=keys.unfinished(model, priority),
            job_keys=[*map(keys.job, job_ids), *map(keys.job_inputs, job_ids)],
            lane_finished=keys.lane_finished(model, priority), message=message.raw, job_ids=list(job_ids)))

    def withdraw(self, job_ids: Iterable[str], *, model: str, priority: str) -> None:
        """Forget admitted jobs of ``model`` and ``priority`` that will not run, and count them down
        (once, however often they are withdrawn)."""
        job_ids = list(job_ids)
        _WITHDRAW_LAYOUT.call(self._withdraw, queued_images=keys.queued_images(model, priority),
                              unfinished=keys.unfinished(model, priority),
                              job_keys=[*map(keys.job, job_ids), *map(keys.job_inputs, job_ids)],
                              lane_finished=keys.lane_finished(model, priority), job_ids=job_ids)

    def reconcile(self, models: Sequence[str], *, chunk: int = 1000) -> dict[tuple[str, str], int]:
        """Bring each queued-images counter of ``models`` back to the images of its jobs still
        queued or running, forgetting jobs whose record is final or gone.

        Answers, by (model, priority), how many jobs were forgotten. Meant to run now and then (from
        one worker's heartbeat, say): it reads every unfinished job, ``chunk`` at a time so that no
        script holds Redis for long; each lane's counter is then set from its hash in one script.
        """
        forgotten: dict[tuple[str, str], int] = {}
        for lane in ((model, priority) for model in models for priority in PRIORITIES):
            unfinished = keys.unfinished(*lane)
            forgotten[lane] = 0
            cursor = 0
            while True:
                cursor, entries = self._redis.hscan(unfinished, cursor, count=chunk)  # NOVALUES is Redis 7.4's
                if entries:
                    forgotten[lane] += _FORGET_ENDED_LAYOUT.call(self._forget_ended, unfinished=unfinished,
                                                                 job_prefix=keys.job(""), job_ids=list(entries))
                if not cursor:
                    break
            _RECOUNT_LAYOUT.call(self._recount, queued_images=keys.queued_images(*lane), unfinished=unfinished)
        return forgotten

    def recount_tenants(self, models: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Bring each tenant's queued-items counter (``inferq.keys.tenant_queued``, what its
        ``max_queued_items`` is held to) back to the items of its jobs still unfinished, in every
        lane of ``models`` and of every model the catalog knows (the counter is of all of them).

        Answers, by tenant, the counters it changed: (before, after). Best after :meth:`reconcile`,
        which forgets the jobs that ended without their finish (their items are what a tenant's
        counter is left holding): a counter left high would refuse the tenant's work for good, one
        left low would let it past its limit.
        """
        known = {name.decode() for name in self._redis.hkeys(keys.MODELS)}
        lanes = [keys.unfinished(model, priority) for model in sorted({*models, *known}) for priority in PRIORITIES]
        flat = _RECOUNT_TENANTS_LAYOUT.call(self._recount_tenants, lanes=lanes, tenant_weights=keys.TENANT_WEIGHTS,
                                            job_prefix=keys.job(""), queued_prefix=keys.tenant_queued(""))
        return {flat[i].decode(): (int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)}

    def start(self, job_ids: Sequence[str]) -> set[str]:
        """Mark a batch's queued jobs running and answer those of them that were cancelled, which a
        worker skips, in one round trip. One cancelled after it is run all the same: finishing it
        writes nothing over its cancellation. A Redis at maxmemory refuses the mark (Redis errors
        otherwise propagate): the jobs then read ``queued`` until they finish, and finishing them is
        what frees memory; the cancelled ones are found by :meth:`cancelled`, which writes nothing."""
        if not job_ids:
            return set()
        try:
            positions = _START_LAYOUT.call(self._start, jobs=[keys.job(job_id) for job_id in job_ids], now=time.time())
        except redis.exceptions.ResponseError as exc:
            if not refused_for_memory(exc):
                raise
            log.warning("could not mark %d jobs running: %s", len(job_ids), exc)
            return self.cancelled(job_ids)
        return {job_ids[position - 1] for position in positions}

    def progress(self, items_done: Mapping[str, int]) -> None:
        """Record how many items of each running job (id -> items) the model has answered, and
        announce it, in one round trip."""
        if items_done:
            _PROGRESS_LAYOUT.call(self._progress, jobs=[keys.job(job_id) for job_id in items_done],
                                  items_done=list(items_done.values()))

    @contextlib.contextmanager
    def progress_reports(self) -> Iterator[Callable[[Mapping[str, int]], None]]:
        """A function that records progress as :meth:`progress` does, for the block's time, without
        waiting for Redis: each report is sent and its reply read when the next is sent, or when
        the block ends, so that its round trip overlaps the next model call. A report that fails
        is logged and dropped: progress is a hint, and the outcome that follows is what counts."""
        pool = self._redis.connection_pool
        connection = None  # taken on the first report: most batches have none
        sent: list[Mapping[str, int]] = []

        def read_reply() -> None:
            assert connection is not None
            items_done = sent.pop()
            try:
                try:
                    connection.read_response()
                except redis.exceptions.NoScriptError:  # Redis restarted and forgot it: load it, run it
                    self.progress(items_done)
            except redis.RedisError as exc:
                log.warning("could not write the progress of %d jobs: %s", len(items_done), exc)

        def report(items_done: Mapping[str, int]) -> None:
            nonlocal connection
            if sent:
                read_reply()
            if connection is None:
                connection = pool.get_connection()
            try:
                connection.send_command("EVALSHA", self._progress.sha, *_PROGRESS_LAYOUT.command(
                    jobs=[keys.job(job_id) for job_id in items_done], items_done=list(items_done.values())))
            except redis.RedisError as exc:
                log.warning("could not send the progress of %d jobs: %s", len(items_done), exc)
            else:
                sent.append(dict(items_done))

        try:
            yield report
            if sent:
                read_reply()
        except BaseException:
            # A reply may still be on its way: never give the connection back with it unread.
            if connection is not None:
                connection.disconnect()
            raise
        finally:
            if connection is not None:
                pool.release(connection)

    def stored_inputs(self, job_ids: Sequence[str]) -> list[dict[str, bytes]]:
        """Each job's stored inputs (input name -> bytes), in one round trip; empty where none are."""
        with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(keys.job_inputs(job_id))
            return [{name.decode(): data for name, data in inputs.items()} for inputs in pipe.execute()]

    def finish(self, finished: Sequence[Finished], *, stored: Sequence[str] = (),
               acks: HeldMessages | None = None) -> None:
        """Record the jobs' outcomes, answer whoever waits for them, count them ended in their lanes,
        queue their callbacks, and delete the stored inputs of the jobs ``stored`` names, all in one
        round trip; and with ``acks``, acknowledge the batch's messages in the same step, once all
        of that is written: a worker that dies after it leaves nothing to deliver again, and one
        that dies before, or a finish that fails, leaves every message to be delivered again."""
        # Positions in ``batch`` count from 1, as Lua does: the counters, their unfinished hashes, the
        # jobs, then each reply list once, the inputs and the counters' lanes.
        counters = {counter: position + 1 for position, counter in
                    enumerate(dict.fromkeys((job.model, job.priority) for job in finished))}
        reply_positions: dict[str, int] = {}
        for job in finished:
            if job.reply_to and job.reply_to not in reply_positions:
                reply_positions[job.reply_to] = 2 * len(counters) + 1 + len(finished) + len(reply_positions)
        batch = [*(keys.queued_images(*counter) for counter in counters),
                 *(keys.unfinished(*counter) for counter in counters),
                 *(keys.job(job.job_id) for job in finished),
                 *(keys.replies(listener) for listener in reply_positions),
                 *(keys.job_inputs(job_id) for job_id in stored),
                 *(keys.lane_finished(*counter) for counter in counters)]
        outcomes: list[object] = []
        for job in finished:
            reply = reply_positions[job.reply_to] if job.reply_to else 0
            outcomes += [job.outcome.status, job.count, job.outcome.to_json(), reply, job.job_id,
                         counters[job.model, job.priority]]
        script_keys, args = _FINISH_LAYOUT.build(
            batch=batch, callbacks_due=keys.CALLBACKS_DUE, ttl=self._ttl, now=time.time(), counters=len(counters),
            jobs=len(finished), outcomes=outcomes, stored=len(stored))
        if acks is None:
            self._finish(keys=script_keys, args=args)
        else:  # acking() takes the acks off the ends before the layout's prologue reads them
            self._finish_acking(keys=[*script_keys, *acks.keys], args=[*args, *acks.args])

    def cancel(self, job_id: str) -> str | None:
        """Cancel a queued or running job: it leaves its queue's count at once, is never run if a
        worker has not started it, and whatever its worker answers is discarded. Answers the status
        the job had (a final one is left as it is; ``cancelled`` again changes nothing); None for a
        job without a record."""
        fields = self._redis.hmget(keys.job(job_id), ["model", "priority", "reply_to"])
        model, priority, reply_to = (None if raw is None else raw.decode() for raw in fields)
        lane = (model or "", priority or INTERACTIVE)
        outcome = Outcome.cancelled("cancelled (DELETE /jobs/<id>) before it finished; it has no answer")
        status = _CANCEL_LAYOUT.call(
            self._cancel, job=keys.job(job_id), inputs=keys.job_inputs(job_id), queued_images=keys.queued_images(*lane),
            unfinished=keys.unfinished(*lane), reply_list=reply_to or keys.replies(""),
            lane_finished=keys.lane_finished(*lane), callbacks_due=keys.CALLBACKS_DUE, ttl=self._ttl,
            now=time.time(), job_id=job_id, outcome=outcome.to_json(), waiting=1 if reply_to else 0)
        return None if status is None else status.decode()

    def cancelled(self, job_ids: Sequence[str]) -> set[str]:
        """Those of the jobs that were cancelled, in one round trip: a worker skips them."""
        if not job_ids:
            return set()
        positions = _CANCELLED_LAYOUT.call(self._cancelled, jobs=[keys.job(job_id) for job_id in job_ids])
        return {job_ids[position - 1] for position in positions}

    def reserve_key(self, key: str, fingerprint: str, job_id: str, *, pending_s: float) -> HeldKey:
        """Reserve idempotency ``key`` (a Redis key: ``inferq.keys.idempotency``) for a request of
        ``fingerprint`` that would create job ``job_id``, unless another request holds it: who holds
        it (``job_id`` itself if this one does now). A reservation lasts ``pending_s`` at most,
        until :meth:`settle_key`."""
        state, held_by, held_for = _RESERVE_KEY_LAYOUT.call(
            self._reserve_key, key=key, fingerprint=fingerprint, job_id=job_id,
            pending_ms=max(1, int(pending_s * 1000)), job_prefix=keys.job(""))
        return HeldKey(state.decode(), held_by.decode(), held_for.decode())

    def settle_key(self, key: str, job_id: str, fingerprint: str) -> bool:
        """Once the request that reserved ``key`` for ``job_id`` is over, admitted or not: bind the key
        to the job if it was admitted (it then expires with the job's record), else free it for a
        retry. Answers whether it was bound."""
        return bool(_SETTLE_KEY_LAYOUT.call(self._settle_key, key=key, job=keys.job(job_id), job_id=job_id,
                                            fingerprint=fingerprint))

    def get(self, job_id: str) -> JobRecord | None:
        fields = {k.decode(): v for k, v in self._redis.hgetall(keys.job(job_id)).items()}
        if not fields:
            return None
        return JobRecord(
            job_id=job_id,
            status=fields["status"].decode(),
            priority=fields.get("priority", INTERACTIVE.encode()).decode(),
            model=fields["model"].decode() if "model" in fields else None,
            filenames=json.loads(fields.get("filenames", b"[]")),
            created_at=_float(fields.get("created_at")),
            started_at=_float(fields.get("started_at")),
            finished_at=_float(fields.get("finished_at")),
            outcome=Outcome.from_dict(orjson.loads(fields["outcome"])) if "outcome" in fields else None,
            items_done=int(fields.get("items_done", 0)),
            lane_mark=int(fields["lane_mark"]) if "lane_mark" in fields else None,
            callback=CallbackState.from_fields(fields),
            tenant=fields["tenant"].decode() if "tenant" in fields else DEFAULT_TENANT,
        )

    def replies(self, listener: str, timeout_s: float) -> list[tuple[str, Outcome]]:
        """Outcomes pushed for ``listener``: the first batch's, waiting up to ``timeout_s`` for one."""
        popped = self._redis.blpop([keys.replies(listener)], timeout=timeout_s)
        if popped is None:
            return []
        return [(job_id, Outcome.from_dict(outcome)) for job_id, outcome in orjson.loads(popped[1])]

    def queued_images(self, models: Sequence[str]) -> dict[str, dict[str, int]]:
        """Images admitted and not yet answered, by model and priority."""
        if not models:
            return {}
        counters = [(model, priority) for model in models for priority in PRIORITIES]
        counts = self._redis.mget([keys.queued_images(*counter) for counter in counters])
        queued: dict[str, dict[str, int]] = {model: {} for model in models}
        for (model, priority), count in zip(counters, counts, strict=True):
            queued[model][priority] = int(count or 0)
        return queued

    @property
    def depth_limits(self) -> dict[str, int]:
        return dict(self._depth_limits)

    @property
    def redis(self) -> redis.Redis:
        """The store's client, for what reads beside it (``inferq.drain``)."""
        return self._redis

    def count_refused(self, tenant: str, limit: str, items: int) -> None:
        """Count ``items`` of ``tenant`` refused for ``limit`` (a tenant's, or ``queue_full``): for
        operators, so a Redis that cannot take the count (at maxmemory, say) is left as it is."""
        try:
            self._redis.hincrby(keys.tenant_refused(tenant), limit, items)
        except redis.RedisError as exc:
            log.info("could not count a refusal of tenant %r: %s", tenant, exc)

    def tenant_stats(self, tenants: Sequence[str]) -> dict[str, dict[str, object]]:
        """Each tenant's queued items, items admitted, refused (by limit) and ended, and the jobs
        started with their total wait in the queue, in one round trip."""
        with self._redis.pipeline(transaction=False) as pipe:
            for tenant in tenants:
                pipe.mget([keys.tenant_queued(tenant), keys.tenant_admitted(tenant), keys.tenant_finished(tenant)])
                pipe.hgetall(keys.tenant_refused(tenant))
                pipe.hmget(keys.tenant_waits(tenant), ["jobs", "seconds"])
            replies = pipe.execute()
        stats: dict[str, dict[str, object]] = {}
        for position, tenant in enumerate(tenants):
            (queued, admitted, ended), refused, (jobs, seconds) = replies[3 * position:3 * position + 3]
            stats[tenant] = {
                "queued_items": int(queued or 0), "items_admitted": int(admitted or 0),
                "items_refused": {limit.decode(): int(count) for limit, count in sorted(refused.items())},
                "items_ended": int(ended or 0),
                "jobs_started": int(jobs or 0), "queue_wait_s_total": float(seconds or 0),
            }
        return stats

    def publish_tenants(self, tenants: Sequence[Tenant]) -> None:
        """Write the tenants' weights where the workers' claim reads them (``inferq.broker``)."""
        self._redis.hset(keys.TENANT_WEIGHTS, mapping={tenant.name: repr(tenant.weight) for tenant in tenants})

    def dead_letters(self) -> int:
        """Messages the workers' claim set aside, unreadable (``inferq.keys.DEAD_LETTERS``)."""
        return self._redis.llen(keys.DEAD_LETTERS)


def refused_for_memory(error: redis.RedisError) -> bool:
    """Whether Redis refused a command for being at ``maxmemory``. Redis 7 answers a script's refused
    write with an OOM error; 6.2 wraps it in the script's error, which redis-py does not map."""
    return isinstance(error, redis.exceptions.OutOfMemoryError) or "OOM command not allowed" in str(error)


def _float(raw: bytes | None) -> float | None:
    return None if raw is None else float(raw)
