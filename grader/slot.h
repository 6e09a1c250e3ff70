/* slot.h - one job at a time: poll the queue, run what it hands out,
 * report the result.  The grader runs BROADWAY_SLOTS of these threads.
 *
 * Nothing transient ends a slot: connection errors and 5xx are retried with
 * backoff, an empty queue (498) is polled again after 0.2 s doubling to 2 s,
 * and a 401 (the API forgot this worker) re-registers.  A slot ends only
 * when the session stops. */
#ifndef GR_SLOT_H
#define GR_SLOT_H

#include "session.h"

typedef struct gr_slot {
  gr_session_t *session;
  int index;
} gr_slot_t;

/* Thread body; `arg` is a gr_slot_t. */
void *gr_slot_main(void *arg);

#endif
