/* course.h - the courses file and who may act for a course (the 2019 API,
 * PROTOCOL-LATER.md §2.2, §2.3, §2.10).
 *
 * The file maps a course id to its tokens, in either of the original's
 * formats (both may be mixed in one file):
 *
 *   {"cs241": ["tokA"], "cs225": ["tokA", "tokB"]}                 (2019)
 *   {"cs241": {"tokens": ["tokA"], "query_tokens": ["view1"]}}      (later)
 *
 * `tokens` pass on every course route ("admin"); `query_tokens` only on the
 * read-only routes a browser calls ("member": run status, queue position,
 * stream).  A course id is [-A-Za-z0-9_]+, at most BW_COURSE_MAX bytes; a
 * token is 1 to BW_COURSE_TOKEN_MAX printable ASCII bytes without a space
 * (the header format could never carry one).  Anything else, and any key
 * but those two in a course's object, is refused naming the file, the line
 * and the key.
 *
 * Who owns what: bw_courses_load() allocates a bw_courses_t, immutable from
 * then on, which bw_courses_free() frees.  fcgi/pool.c loads it in the
 * parent (at start and on SIGHUP) and every worker forked after that uses
 * the parent's copy.  Tokens are compared in constant time (auth.h) and
 * appear in no message and no log line. */
#ifndef BW_COURSE_H
#define BW_COURSE_H

#include <stddef.h>

#include "error.h"

#define BW_COURSE_TOKEN_MAX 255

typedef struct bw_courses bw_courses_t;

/* Reads and checks `path`; NULL or "" (no courses_file) gives *out NULL: no
 * course, every course route answers "course not found".  Returns 0 and
 * *out, or BW_EINVAL with
 * "<path>:<line>: <key>: <what is wrong>" (line of the key, or of the JSON
 * syntax error) in error->message; BW_ENOMEM.  *out is NULL on failure. */
int bw_courses_load(const char *path, bw_courses_t **out, bw_error_t *error);

/* The same from text in memory; `name` stands for the file in messages. */
int bw_courses_parse(const char *name, const char *text, size_t len,
                     bw_courses_t **out, bw_error_t *error);

void bw_courses_free(bw_courses_t *courses); /* NULL is fine */

/* How many courses were loaded (0 for NULL), for the log. */
size_t bw_courses_count(const bw_courses_t *courses);

enum bw_course_role {
  BW_COURSE_ADMIN,  /* the course's tokens */
  BW_COURSE_MEMBER, /* its tokens or its query_tokens */
};

/* The Authorization header (NULL when absent) for `course` (NULL: none
 * loaded counts as no course).  The header must be exactly "Bearer <token>":
 * the 7 bytes "Bearer " and one token with no further space.  Returns 0, or
 * BW_EAUTH with, checked in this order, "invalid token format", "course not
 * found" or "invalid token" (§2.2).  The cluster token is not a course
 * token: it passes only if the file lists it for this course. */
int bw_course_auth(const bw_courses_t *courses, const char *authorization,
                   const char *course, enum bw_course_role need,
                   bw_error_t *error);

#endif
