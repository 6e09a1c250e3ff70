/* tail.h - the last N bytes of an output stream, and making bytes safe to
 * send as a JSON string.
 *
 * A stage may print gigabytes; the grader keeps only the tail, in a ring of
 * fixed size, and counts the rest.  The API refuses bodies with invalid UTF-8
 * or NUL bytes, and a tail may start in the middle of a character, so text
 * leaves through gr_tail_text(), which repairs both. */
#ifndef GR_TAIL_H
#define GR_TAIL_H

#include <stddef.h>

typedef struct gr_tail {
  char *buf;
  size_t cap;   /* bytes kept at most (0: keep nothing, only count) */
  size_t start; /* index of the oldest kept byte */
  size_t len;   /* bytes kept */
  unsigned long long total; /* bytes ever appended */
} gr_tail_t;

/* Returns 0 or BW_ENOMEM. */
int gr_tail_init(gr_tail_t *tail, size_t cap);
void gr_tail_cleanup(gr_tail_t *tail);
void gr_tail_append(gr_tail_t *tail, const char *data, size_t len);

/* The kept bytes as a NUL-terminated string, sanitised as gr_utf8_sanitize()
 * does, keeping at most the last `max` kept bytes.  Caller frees.  NULL when
 * out of memory. */
char *gr_tail_text(const gr_tail_t *tail, size_t max);

/* A NUL-terminated copy of data[0..len) in which every NUL byte and every
 * byte that does not start a valid UTF-8 sequence became U+FFFD.  Caller
 * frees.  NULL when out of memory. */
char *gr_utf8_sanitize(const char *data, size_t len);

#endif
