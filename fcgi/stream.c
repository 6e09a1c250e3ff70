#include "stream.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen3.h"
#include "json.h"
#include "log.h"
#include "longpoll.h"
#include "queue.h"

/* The least time between two rechecks of a process's streams: a burst of
 * hand-outs (a big run being drained) is one recheck, not one per job. */
#define STREAM_REFRESH_MIN_MS 20
/* After a recheck the database failed: try again this much later. */
#define STREAM_RETRY_MS 1000

#define STREAM_NOT_FOUND "grading job with the given ID not found"

typedef struct stream_slot {
  FCGX_Request *fcgx;
  bw_request_t req;
  char course[BW_COURSE_MAX + 1];
  bson_oid_t job;
  char state[16];       /* last state seen: "QUEUED", "STARTED", ... */
  int64_t position;     /* last position sent; -1: none */
  int64_t keepalive_ms; /* the next keep-alive is due then */
  struct timespec start;
} stream_slot_t;

static struct {
  const bw_config_t *cfg;
  bw_db_t *db;
  stream_slot_t *slots; /* oldest first */
  int n, cap;
  uint64_t seen;   /* bw_longpoll_moved() at the last recheck */
  bool dirty;      /* a recheck is owed (something moved, or one failed) */
  int64_t next_refresh_ms;
} st;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- events ------------------------------------------------------------ */

static int stream_event(bw_request_t *req, const char *type,
                        json_object *data) {
  json_object *event = json_object_new_object();
  const char *text;
  size_t len;
  char *line;
  int rc = -1;

  json_object_object_add(event, "type", json_object_new_string(type));
  json_object_object_add(event, "data", data);
  text = json_object_to_json_string_length(
      event, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  line = text != NULL ? malloc(len + 64) : NULL;
  if (line != NULL) {
    int n = snprintf(line, len + 64, "event: status_update\ndata: %s\n\n",
                     text);
    rc = bw_request_stream_write(req, line, (size_t)n);
  }
  free(line);
  json_object_put(event);
  return rc;
}

static bool stream_final(const char *state) {
  return strcmp(state, "FINISHED") == 0 || strcmp(state, "FAILED") == 0;
}

/* The job's state now, and its position while it waits (-1: none).
 * Returns 0, BW_ENOTFOUND (not one of the course's jobs) or BW_EDB. */
static int stream_look(bw_db_t *db, const stream_slot_t *slot,
                       const char **state, int64_t *pos, bw_error_t *error) {
  int rc = bw_job_state_gen3(db, slot->course, &slot->job, state, error);

  *pos = -1;
  if (rc < 0 || strcmp(*state, "QUEUED") != 0)
    return rc;
  rc = bw_queue_position(db, slot->course, &slot->job, pos, error);
  if (rc == BW_ENOTFOUND) { /* not waiting (yet, or any more) */
    *pos = -1;
    rc = 0;
  }
  return rc;
}

/* Sends what changed since the last look.  Returns 1 when the stream is
 * over (its final state was sent, or the client is gone), else 0. */
static int stream_send(stream_slot_t *slot, const char *state, int64_t pos) {
  if (strcmp(state, "QUEUED") == 0) {
    if (pos >= 0 && pos != slot->position &&
        stream_event(&slot->req, "position", json_object_new_int64(pos)) < 0)
      return 1;
  } else if (strcmp(state, slot->state) != 0 &&
             stream_event(&slot->req, "state",
                          json_object_new_string(state)) < 0) {
    return 1;
  }
  slot->position = pos;
  bson_strncpy(slot->state, state, sizeof slot->state);
  return stream_final(state) ? 1 : 0;
}

/* A parked stream whose job is not waiting in the queue (the batch read of
 * its course's queue said so): its state, and what changed sent.  1 over,
 * 0 goes on, or BW_EDB (nothing sent). */
static int stream_update(stream_slot_t *slot, bw_error_t *error) {
  const char *state = NULL;
  int rc = bw_job_state_gen3(st.db, slot->course, &slot->job, &state, error);

  /* Gone while streamed (a wiped database): it will never finish. */
  if (rc == BW_ENOTFOUND)
    state = "FAILED";
  else if (rc < 0)
    return rc;
  return stream_send(slot, state, -1);
}

/* ---- parked streams ---------------------------------------------------- */

static void stream_end(int i) {
  stream_slot_t *slot = &st.slots[i];

  bw_request_finish(&slot->req, st.cfg->max_body, &slot->start);
  free(slot->fcgx);
  memmove(&st.slots[i], &st.slots[i + 1],
          (size_t)(st.n - i - 1) * sizeof *st.slots);
  st.n--;
  bw_longpoll_watchers(st.n);
}

/* A free slot, or NULL when this process holds all it may. */
static stream_slot_t *stream_new_slot(void) {
  if (bw_longpoll_parked() + st.n >= BW_LONGPOLL_MAX)
    return NULL;
  if (st.n == st.cap) {
    int cap = st.cap ? st.cap * 2 : 16;
    stream_slot_t *bigger = realloc(st.slots, (size_t)cap * sizeof *bigger);
    if (bigger == NULL)
      return NULL;
    st.slots = bigger;
    st.cap = cap;
  }
  return &st.slots[st.n];
}

int bw_handle_stream(bw_call_t *call, bw_error_t *error) {
  const char *state = NULL;
  stream_slot_t *slot;
  int64_t pos;
  int rc;

  st.cfg = call->cfg;
  st.db = call->db;
  if (!bw_longpoll_available() || (slot = stream_new_slot()) == NULL)
    return bw_error_set(error, BW_EDB, "stream: no room on this server now, "
                                       "retry in a moment");
  memset(slot, 0, sizeof *slot);
  /* The router checked the member's token for call->course. */
  if (strlen(call->course) > BW_COURSE_MAX ||
      !bw_db_oid_parse(call->g3_id, &slot->job))
    return bw_error_set(error, BW_ENOTFOUND, STREAM_NOT_FOUND);
  bson_strncpy(slot->course, call->course, sizeof slot->course);
  slot->position = -1;
  rc = stream_look(call->db, slot, &state, &pos, error);
  if (rc == BW_ENOTFOUND) /* the router makes it a 400, as the original */
    return bw_error_set(error, BW_ENOTFOUND, STREAM_NOT_FOUND);
  if (rc < 0)
    return rc;
  slot->fcgx = call->req->fcgx;
  slot->req = *call->req;
  if (bw_request_stream_begin(&slot->req, "text/event-stream") < 0 ||
      stream_send(slot, state, pos) != 0) {
    call->req->status = slot->req.status;
    return 0; /* over already (or gone): the worker finishes it */
  }
  clock_gettime(CLOCK_MONOTONIC, &slot->start);
  slot->keepalive_ms = now_ms() + (int64_t)call->cfg->stream_keepalive * 1000;
  call->req->parked = true;
  st.n++;
  bw_longpoll_watchers(st.n);
  return 0;
}

/* The streams of course `course` not looked at yet in this recheck
 * (done[] marks them): one read of the course's queue for all their
 * positions, then a state read for each job that is not waiting.  over[i]
 * is set for the streams that ended.  0 or BW_EDB. */
static int stream_refresh_course(const char *course, bool *done, bool *over,
                                 bson_oid_t *jobs, int64_t *pos, int *idx,
                                 bw_error_t *error) {
  int k = 0, rc;

  for (int j = 0; j < st.n; j++)
    if (!done[j] && strcmp(st.slots[j].course, course) == 0) {
      done[j] = true;
      idx[k] = j;
      jobs[k++] = st.slots[j].job;
    }
  rc = bw_queue_positions(st.db, course, jobs, (size_t)k, pos, error);
  for (int m = 0; rc == 0 && m < k; m++) {
    stream_slot_t *slot = &st.slots[idx[m]];
    rc = pos[m] >= 0 ? stream_send(slot, "QUEUED", pos[m])
                     : stream_update(slot, error);
    if (rc == 1)
      over[idx[m]] = true;
    if (rc > 0)
      rc = 0;
  }
  return rc;
}

/* Looks at every stream's job again, a course at a time.  Backs off to
 * twice its own duration, so rechecks take at most a third of the
 * process's time. */
static void stream_refresh_all(void) {
  int64_t start = now_ms(), took;
  size_t n = (size_t)st.n;
  bool *done = calloc(n, sizeof *done), *over = calloc(n, sizeof *over);
  bson_oid_t *jobs = malloc(n * sizeof *jobs);
  int64_t *pos = malloc(n * sizeof *pos);
  int *idx = malloc(n * sizeof *idx);
  bool failed = done == NULL || over == NULL || jobs == NULL || pos == NULL ||
                idx == NULL;
  bw_error_t error = {.message = "out of memory"};

  for (int i = 0; i < st.n && !failed; i++)
    if (!done[i] && stream_refresh_course(st.slots[i].course, done, over, jobs,
                                          pos, idx, &error) < 0)
      failed = true;
  if (failed)
    bw_log_warn("stream: recheck failed: %s", error.message);
  for (int i = st.n - 1; over != NULL && i >= 0; i--)
    if (over[i])
      stream_end(i);
  free(done);
  free(over);
  free(jobs);
  free(pos);
  free(idx);
  took = now_ms() - start;
  st.dirty = failed;
  st.next_refresh_ms =
      start + (failed                             ? STREAM_RETRY_MS
               : 2 * took > STREAM_REFRESH_MIN_MS ? 2 * took
                                                  : STREAM_REFRESH_MIN_MS);
}

/* The jobs named as moved: their streams' state at once (a STARTED or the
 * end should not wait for the recheck of every stream's position). */
static void stream_hinted(void) {
  bson_oid_t hints[64];
  int n = bw_longpoll_take_hints(hints, 64);
  bw_error_t error;

  for (int h = 0; h < n; h++)
    for (int i = st.n - 1; i >= 0; i--) {
      if (!bson_oid_equal(&st.slots[i].job, &hints[h]))
        continue;
      int rc = stream_update(&st.slots[i], &error);
      if (rc == 1)
        stream_end(i);
      else if (rc < 0)
        st.dirty = true; /* the recheck will try it again */
    }
}

int bw_stream_pollfds(struct pollfd *fds, int max) {
  int n = 0;
  for (int i = 0; i < st.n && n < max; i++)
    fds[n++] = (struct pollfd){.fd = st.slots[i].fcgx->ipcFd,
                               .events = POLLRDHUP};
  return n;
}

int bw_stream_timeout_ms(void) {
  int64_t now = now_ms(), until;

  if (st.n == 0)
    return -1;
  until = st.slots[0].keepalive_ms;
  for (int i = 1; i < st.n; i++)
    if (st.slots[i].keepalive_ms < until)
      until = st.slots[i].keepalive_ms;
  if ((st.dirty || bw_longpoll_moved() != st.seen) &&
      st.next_refresh_ms < until)
    until = st.next_refresh_ms;
  return until > now ? (int)(until - now) : 0;
}

void bw_stream_tick(const struct pollfd *fds, int n) {
  static const char keepalive[] = ":\n\n";
  uint64_t moved = bw_longpoll_moved();
  int64_t now;

  /* Hung up (the client went away): from the newest, so indexes hold. */
  for (int i = (n < st.n ? n : st.n) - 1; i >= 0; i--)
    if (fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
      stream_end(i);
  if (st.n == 0)
    return;
  stream_hinted();
  if (moved != st.seen) {
    st.seen = moved;
    st.dirty = true;
  }
  if (st.dirty && now_ms() >= st.next_refresh_ms)
    stream_refresh_all();
  now = now_ms();
  for (int i = st.n - 1; i >= 0; i--) {
    stream_slot_t *slot = &st.slots[i];
    if (now < slot->keepalive_ms)
      continue;
    if (bw_request_stream_write(&slot->req, keepalive, sizeof keepalive - 1) <
        0) {
      stream_end(i);
      continue;
    }
    slot->keepalive_ms = now + (int64_t)st.cfg->stream_keepalive * 1000;
  }
}

void bw_stream_stop(void) {
  while (st.n > 0)
    stream_end(st.n - 1);
  free(st.slots);
  st.slots = NULL;
  st.cap = 0;
}
