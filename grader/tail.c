#include "tail.h"

#include <stdlib.h>
#include <string.h>

int gr_tail_init(gr_tail_t *tail, size_t cap) {
  memset(tail, 0, sizeof *tail);
  tail->cap = cap;
  if (cap == 0)
    return 0;
  tail->buf = malloc(cap);
  return tail->buf ? 0 : -1;
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

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if there is
 * none (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_sequence_length(const unsigned char *s, size_t n) {
  unsigned char lo = 0x80, hi = 0xBF;
  size_t len, i;

  if (s[0] >= 0x01 && s[0] <= 0x7F)
    return 1;
  if (s[0] >= 0xC2 && s[0] <= 0xDF)
    len = 2;
  else if (s[0] >= 0xE0 && s[0] <= 0xEF)
    len = 3;
  else if (s[0] >= 0xF0 && s[0] <= 0xF4)
    len = 4;
  else
    return 0;
  if (s[0] == 0xE0)
    lo = 0xA0;
  else if (s[0] == 0xED)
    hi = 0x9F;
  else if (s[0] == 0xF0)
    lo = 0x90;
  else if (s[0] == 0xF4)
    hi = 0x8F;
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xBF)
      return 0;
  return len;
}

char *gr_utf8_sanitize(const char *data, size_t len) {
  static const char replacement[] = "\xEF\xBF\xBD";
  const unsigned char *s = (const unsigned char *)data;
  char *out = malloc(len * 3 + 1), *w = out;
  size_t i = 0;

  if (out == NULL)
    return NULL;
  while (i < len) {
    size_t n = utf8_sequence_length(s + i, len - i);
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
