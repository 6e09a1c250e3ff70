/* queue.h - the job queue: put a job's next attempt in it, hand one out.
 *
 * The queue collection holds only waiting hand-outs, _id "<job>:<attempt>".
 * A poll reads the first few entries with an empty filter and a limit (on
 * FerretDB that is the one query besides _id lookups that does not scan the
 * whole collection), then claims one by inserting claims/_id "<job>:<attempt>":
 * the insert that succeeds owns the hand-out, so no job goes to two graders.
 * Only then does findAndModify mark the job running, and the entry is
 * deleted.  A poller that dies between claim and hand-out leaves a claim with
 * no running job: the reaper re-queues it after cfg->claim_grace. */
#ifndef BW_QUEUE_H
#define BW_QUEUE_H

#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "error.h"

/* Queues attempt `attempt` (1-based) of each job in job_ids (ObjectIds),
 * in one bulk insert.  Entries that already exist are fine (idempotent).
 * Returns 0 or BW_EDB. */
int bw_queue_push(bw_db_t *db, const bson_oid_t *job_ids, size_t n,
                  int attempt, bw_error_t *error);

/* Hands one waiting job to worker_id.  On success *out is
 * {"job_id":..., "stages":[...], "students":[...] (pre/post only)}.
 * Returns 0, BW_EEMPTY, or BW_EDB. */
int bw_queue_poll(bw_db_t *db, const bw_config_t *cfg, const char *worker_id,
                  json_object **out, bw_error_t *error);

/* The _id of a queue / claims / outcomes entry: "<24 hex>:<attempt>". */
void bw_queue_entry_id(const bson_oid_t *job_id, int attempt, char out[48]);

#endif
