#include "tail.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"

int gr_tail_init(gr_tail_t *tail, size_t cap) {
  memset(tail, 0, sizeof *tail);
  tail->cap = cap;
  if (cap == 0)
    return 0;
  tail->buf = malloc(cap);
  return tail->buf ? 0 : BW_ENOMEM;
}

void gr_tail_cleanup(gr_tail_t *tail) {
  free(tail->buf);
  memset(tail, 0, sizeof *tail);
}

void gr_tail_append(gr_tail_t *tail, const char *data, size_t len) {
  size_t write_at, first;

  tail->total += len;
  if (tail->cap == 0 || len == 0)
    return;
  if (len >= tail->cap) {
    memcpy(tail->buf, data + len - tail->cap, tail->cap);
    tail->start = 0;
    tail->len = tail->cap;
    return;
  }
  write_at = (tail->start + tail->len) % tail->cap;
  first = tail->cap - write_at < len ? tail->cap - write_at : len;
  memcpy(tail->buf + write_at, data, first);
  memcpy(tail->buf, data + first, len - first);
  if (tail->len + len > tail->cap) {
    tail->start = (tail->start + tail->len + len - tail->cap) % tail->cap;
    tail->len = tail->cap;
  } else {
    tail->len += len;
  }
}

char *gr_tail_text(const gr_tail_t *tail, size_t max) {
  size_t keep = tail->len < max ? tail->len : max;
  size_t from = (tail->start + tail->len - keep) % (tail->cap ? tail->cap : 1);
  size_t first;
  char *flat, *text;

  flat = malloc(keep + 1);
  if (flat == NULL)
    return NULL;
  first = tail->cap - from < keep ? tail->cap - from : keep;
  if (keep > 0) {
    memcpy(flat, tail->buf + from, first);
    memcpy(flat + first, tail->buf, keep - first);
  }
  text = gr_utf8_sanitize(flat, keep);
  free(flat);
  return text;
}

char *gr_utf8_sanitize(const char *data, size_t len) {
  static const char replacement[] = "\xEF\xBF\xBD";
  const unsigned char *s = (const unsigned char *)data;
  char *out = malloc(len * 3 + 1), *w = out;
  size_t i = 0;

  if (out == NULL)
    return NULL;
  while (i < len) {
    /* A NUL is valid UTF-8, but the API refuses it: replace it too. */
    size_t n = s[i] == '\0' ? 0 : bw_json_utf8_length(s + i, len - i);
    if (n == 0) {
      memcpy(w, replacement, 3);
      w += 3;
      i++;
    } else {
      memcpy(w, s + i, n);
      w += n;
      i += n;
    }
  }
  *w = '\0';
  return out;
}
