#include "lane.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>


/* ---- whose turn ------------------------------------------------------ */

/* [0] seed-era polls, [1] Gen 3 polls: each generation sees only its own
 * lanes, so each takes its own turns. */
static atomic_ullong local_turns[2];
static atomic_ullong *turns = local_turns;

int bw_lane_share_turns(void) {
  void *block = mmap(NULL, sizeof local_turns, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (block == MAP_FAILED)
    return -1;
  turns = block;
  atomic_init(&turns[0], 0);
  atomic_init(&turns[1], 0);
  return 0;
}

uint64_t bw_lane_next_turn(int gen) {
  static pid_t started_for;
  atomic_ullong *t = &turns[gen == 0 ? 0 : 1];
  /* Per process (not shared): start at random, or every process would
   * serve the same run first. */
  if (turns == local_turns && started_for != getpid()) {
    started_for = getpid();
    atomic_store(t, (unsigned long long)getpid() * 2654435761u ^
                        (unsigned long long)bw_db_now_ms());
  }
  return atomic_fetch_add(t, 1);
}

/* ---- reading lanes ---------------------------------------------------- */

static bool lane_from_bson(const bson_t *doc, bw_lane_t *lane) {
  memset(lane, 0, sizeof *lane);
  if (!bw_db_get_oid(doc, "run_id", &lane->run_id))
    return false;
  bson_strncpy(lane->course, bw_db_get_utf8(doc, "course", ""),
               sizeof lane->course);
  lane->gen = (int)bw_db_get_int(doc, "gen");
  lane->partition = (int)bw_db_get_int(doc, "partition");
  bson_iter_t it;
  if (bson_iter_init_find(&it, doc, "opened_at") &&
      BSON_ITER_HOLDS_DATE_TIME(&it))
    lane->opened_at = bson_iter_date_time(&it);
  return true;
}

typedef struct lane_read {
  bw_lanes_t *lanes;
  int gen; /* -1: all */
} lane_read_t;

static void lane_visit(const bson_t *doc, void *ctx) {
  lane_read_t *r = ctx;
  bw_lane_t lane;
  if (!lane_from_bson(doc, &lane) || (r->gen >= 0 && lane.gen != r->gen))
    return;
  r->lanes->v =
      bson_realloc(r->lanes->v, (r->lanes->n + 1) * sizeof *r->lanes->v);
  r->lanes->v[r->lanes->n++] = lane;
}

static int lane_cmp(const void *a, const void *b) {
  const bw_lane_t *x = a, *y = b;
  int c = strcmp(x->course, y->course);
  if (c != 0)
    return c;
  if (x->opened_at != y->opened_at)
    return x->opened_at < y->opened_at ? -1 : 1;
  return bson_oid_compare(&x->run_id, &y->run_id);
}

void bw_lanes_sort(bw_lanes_t *lanes) {
  if (lanes->n > 1)
    qsort(lanes->v, lanes->n, sizeof *lanes->v, lane_cmp);
}

static int lanes_read(bw_db_t *db, int gen, bw_lanes_t *out,
                      bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  lane_read_t r = {out, gen};
  int rc;
  out->v = NULL;
  out->n = 0;
  /* The empty filter: lanes are few, and FerretDB reads them all anyway. */
  rc = bw_db_each(bw_db_coll(db, BW_COLL_LANES), &filter, NULL, lane_visit, &r,
                  error);
  bson_destroy(&filter);
  bw_lanes_sort(out);
  return rc;
}

int bw_lanes_read(bw_db_t *db, int gen, bw_lanes_t *out, bw_error_t *error) {
  return lanes_read(db, gen, out, error);
}

int bw_lanes_read_all(bw_db_t *db, bw_lanes_t *out, bw_error_t *error) {
  return lanes_read(db, -1, out, error);
}

void bw_lanes_cleanup(bw_lanes_t *lanes) {
  bson_free(lanes->v);
  lanes->v = NULL;
  lanes->n = 0;
}

/* ---- turn order (pure) ------------------------------------------------ */

/* The lane of turn t among sorted lanes with `courses` distinct courses
 * starting at first[c] with count[c] lanes each. */
static size_t lane_of_turn(uint64_t t, size_t courses, const size_t *first,
                           const size_t *count) {
  size_t c = (size_t)(t % courses);
  return first[c] + (size_t)((t / courses) % count[c]);
}

void bw_lanes_order(const bw_lanes_t *lanes, uint64_t turn, size_t *order) {
  size_t n = lanes->n, courses = 0, filled = 0;
  size_t *first, *count;
  bool *taken;

  if (n == 0)
    return;
  first = bson_malloc0(n * sizeof *first);
  count = bson_malloc0(n * sizeof *count);
  taken = bson_malloc0(n * sizeof *taken);
  for (size_t i = 0; i < n; i++) {
    if (i == 0 || strcmp(lanes->v[i].course, lanes->v[i - 1].course) != 0)
      first[courses++] = i;
    count[courses - 1]++;
  }
  /* Enough turns for every lane of the largest course to come up. */
  for (uint64_t t = turn; filled < n && t < turn + (uint64_t)n * courses; t++) {
    size_t l = lane_of_turn(t, courses, first, count);
    if (!taken[l]) {
      taken[l] = true;
      order[filled++] = l;
    }
  }
  for (size_t l = 0; filled < n && l < n; l++)
    if (!taken[l])
      order[filled++] = l;
  bson_free(first);
  bson_free(count);
  bson_free(taken);
}

int64_t bw_lanes_rr_position(const int64_t *waiting, size_t runs, size_t i,
                             int64_t k) {
  int64_t pos = 0;
  for (size_t j = 0; j < runs; j++) {
    pos += waiting[j] < k ? waiting[j] : k;
    if (j < i && waiting[j] > k)
      pos++;
  }
  return pos;
}

/* ---- opening and closing ---------------------------------------------- */

static void lane_id(const bson_oid_t *run, char out[25]) {
  bson_oid_to_string(run, out);
}

int bw_lane_open(bw_db_t *db, const bw_lane_key_t *key, int partition,
                 bw_error_t *error) {
  bson_t doc = BSON_INITIALIZER;
  char id[25];
  int rc;
  lane_id(key->run, id);
  BSON_APPEND_UTF8(&doc, "_id", id);
  BSON_APPEND_OID(&doc, "run_id", key->run);
  BSON_APPEND_UTF8(&doc, "course", key->course);
  BSON_APPEND_INT32(&doc, "gen", key->gen);
  BSON_APPEND_INT32(&doc, "partition", partition);
  BSON_APPEND_DATE_TIME(&doc, "opened_at", bw_db_now_ms());
  rc = bw_db_insert_once(db, BW_COLL_LANES, &doc, error);
  bson_destroy(&doc);
  return rc;
}

/* The partition with the fewest open lanes; among equals, one at random
 * (two runs opening at once then rarely pick the same). */
static int lane_pick_partition(bw_db_t *db, int *partition,
                               bw_error_t *error) {
  int parts = bw_db_queue_partitions(db), best = -1, ties = 0;
  int *used = bson_malloc0(sizeof *used * (size_t)parts);
  bw_lanes_t all;
  int rc = bw_lanes_read_all(db, &all, error);

  for (size_t i = 0; rc == 0 && i < all.n; i++)
    used[((all.v[i].partition % parts) + parts) % parts]++;
  for (int p = 0; rc == 0 && p < parts; p++) {
    if (best < 0 || used[p] < used[best]) {
      best = p;
      ties = 1;
    } else if (used[p] == used[best] && rand() % ++ties == 0) {
      best = p;
    }
  }
  bw_lanes_cleanup(&all);
  bson_free(used);
  *partition = best < 0 ? 0 : best;
  return rc;
}

int bw_lane_partition(bw_db_t *db, const bw_lane_key_t *key, int *partition,
                      bw_error_t *error) {
  char id[25];
  bson_t found;
  int rc;

  for (int tries = 0; tries < 3; tries++) {
    lane_id(key->run, id);
    rc = bw_db_find_by_id(db, BW_COLL_LANES, id, &found, error);
    *partition = (int)bw_db_get_int(&found, "partition");
    bson_destroy(&found);
    if (rc != BW_ENOTFOUND)
      return rc;
    rc = lane_pick_partition(db, partition, error);
    if (rc == 0)
      rc = bw_lane_open(db, key, *partition, error);
    /* Another pusher opened it first: use theirs. */
    if (rc != BW_EDUP)
      return rc;
  }
  /* Opened and closed under us three times: any partition is correct. */
  return 0;
}

int bw_lane_confirm(bw_db_t *db, const bw_lane_key_t *key, int partition,
                    bw_error_t *error) {
  bson_t found;
  char id[25];
  int rc;
  /* Looked up first: inserting a lane that is there (the usual case) would
   * be as correct, but FerretDB and PostgreSQL log each duplicate key as an
   * error.  Still race-free: the push's entries are in before this look,
   * and a closer deletes the lane before its own look (lane.h). */
  lane_id(key->run, id);
  rc = bw_db_find_by_id(db, BW_COLL_LANES, id, &found, error);
  bson_destroy(&found);
  if (rc == BW_ENOTFOUND)
    rc = bw_lane_open(db, key, partition, error);
  return rc == BW_EDUP ? 0 : rc;
}

/* Does `partition` hold an entry of run?  (The run_id lookup: indexed on
 * MongoDB and on FerretDB's PostgreSQL backend.)  1, 0 or BW_EDB. */
static void lane_visit_any(const bson_t *doc, void *ctx) {
  (void)doc;
  *(bool *)ctx = true;
}

static int lane_has_entries(bw_db_t *db, int partition, const bson_oid_t *run,
                            bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
  bool any = false;
  int rc;
  BSON_APPEND_OID(&filter, "run_id", run);
  BSON_APPEND_INT64(&opts, "limit", 1);
  rc = bw_db_each(bw_db_queue(db, partition), &filter, &opts, lane_visit_any,
                  &any, error);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc < 0 ? rc : any;
}

static int lane_delete(bw_db_t *db, const bson_oid_t *run, bw_error_t *error) {
  bson_t filter = BSON_INITIALIZER;
  bson_error_t driver;
  char id[25];
  int rc = 0;
  lane_id(run, id);
  BSON_APPEND_UTF8(&filter, "_id", id);
  if (!mongoc_collection_delete_one(bw_db_coll(db, BW_COLL_LANES), &filter,
                                    NULL, NULL, &driver))
    rc = bw_db_error(&driver, error);
  bson_destroy(&filter);
  return rc;
}

bool bw_lane_young(const bw_lane_t *lane) {
  return lane->opened_at > bw_db_now_ms() - BW_LANE_YOUNG_MS;
}

int bw_lane_close(bw_db_t *db, const bw_lane_t *lane, bw_error_t *error) {
  bw_lane_key_t key = {&lane->run_id, lane->course, lane->gen};
  int rc = lane_delete(db, &lane->run_id, error);
  /* Deleted first, looked again second: a push that saw the lane before
   * the delete put its entries in before this look (lane.h). */
  if (rc == 0)
    rc = lane_has_entries(db, lane->partition, &lane->run_id, error);
  if (rc <= 0)
    return rc;
  return bw_lane_confirm(db, &key, lane->partition, error);
}

int bw_lane_drop(bw_db_t *db, const bson_oid_t *run, bw_error_t *error) {
  return lane_delete(db, run, error);
}
