/* json.h - JSON in and out: parsing request bodies safely, JSend envelopes,
 * and the bridge between json-c objects and BSON documents.
 *
 * Ownership: every function returning a json_object* returns a new reference
 * that the caller must json_object_put().  Functions taking a json_object*
 * "data" argument take over that reference (so callers can nest calls). */
#ifndef BW_JSON_H
#define BW_JSON_H

#include <bson/bson.h>
#include <json-c/json.h>
#include <stddef.h>

#include "error.h"

/* Parses a request body.  Rejects (BW_EINVAL, message names the problem and,
 * where it can, the field): empty body, invalid JSON, invalid UTF-8, NUL
 * bytes (raw or \u0000 escaped) anywhere, nesting deeper than max_depth, a top
 * level that is not an object, and any object key that starts with '$' or
 * contains '.' (such keys could become MongoDB operators or paths).  On
 * success *out is an object.
 *
 * The syntax is RFC 8259 exactly (json-c alone would take NaN and raw
 * control characters in strings): also rejected are lone UTF-16
 * surrogate escapes, and numbers json-c would change (integers outside
 * int64/uint64, doubles that overflow to inf).  The top-level object counts
 * as depth 1.  Messages:
 *   "body: empty"                       "body: expected a JSON object"
 *   "body: invalid JSON at offset 12"   "body: invalid UTF-8 at offset 7"
 *   "body: contains a NUL byte at offset 7"
 *   "body: nesting deeper than 32"      "body: number out of range at offset 5"
 *   "body: unexpected data after the object at offset 8"
 *   "students[2].NAME: contains a NUL byte"
 *   "body: an object key contains a NUL byte at offset 3" (json-c cuts keys
 *      at a NUL, so only the offset is known)
 *   "students[0].$where: keys must not start with '$'"
 *   "env.a.b: keys must not contain '.'"
 * A body over INT_MAX bytes is BW_ETOOBIG (nginx stops it long before). */
int bw_json_parse_body(const char *buf, size_t len, int max_depth,
                       json_object **out, bw_error_t *error);

/* A request body whose one large array is kept as text.  json-c spends
 * ~870 bytes on each small object, so a 10,000-student roster parsed whole
 * costs ~9 MB; kept as text, each element is parsed when it is read, one at
 * a time.
 *
 * bw_json_parse_body_lazy does every check of bw_json_parse_body, with the
 * same messages, except that when the top-level `key` (as written, without
 * escapes; the last one if repeated) holds an array, *out has an empty array
 * there and *items that array's elements.  *items is NULL otherwise.  The
 * `$`/`.` key and NUL checks of an element's contents are made when it is
 * read: bw_json_items_get gives element i as a new reference (NULL for a
 * JSON null) or BW_EINVAL naming "<key>[i]...".  The caller frees *items
 * with bw_json_items_free (NULL is fine). */
typedef struct bw_json_items bw_json_items_t;

int bw_json_parse_body_lazy(const char *buf, size_t len, int max_depth,
                            const char *key, json_object **out,
                            bw_json_items_t **items, bw_error_t *error);
size_t bw_json_items_count(const bw_json_items_t *items); /* 0 for NULL */
int bw_json_items_get(const bw_json_items_t *items, size_t i, json_object **out,
                      bw_error_t *error);
void bw_json_items_free(bw_json_items_t *items);

/* The value of one hex digit (either case), or -1: for \u escapes here and
 * percent-encoding in fcgi/request.c. */
int bw_json_hex_value(int c);

/* Length of the valid RFC 3629 UTF-8 sequence at p (avail > 0 bytes left):
 * no overlongs, no surrogates, nothing above U+10FFFF; 0 when there is
 * none.  A NUL byte is a sequence of 1.  The one UTF-8 decoder: the body
 * check here and the grader's output repair (grader/tail.c) use it. */
size_t bw_json_utf8_length(const unsigned char *p, size_t avail);

/* Adds `value` (a new reference; NULL when its constructor failed) to
 * `object` under `key`, which then owns it; on failure puts it.  Returns 0
 * or BW_ENOMEM. */
int bw_json_add(json_object *object, const char *key, json_object *value);

/* JSend envelopes.  success: {"status":"success","data":data} (data NULL ->
 * null); fail: {"status":"fail","data":{"message":msg}}; error:
 * {"status":"error","message":msg,"code":code}. */
json_object *bw_jsend_success(json_object *data);
json_object *bw_jsend_fail(const char *message);
json_object *bw_jsend_error(const char *message, int code);
/* The 2019 API's body-schema failure (PROTOCOL-LATER.md §2.1): data is the
 * message itself, a string: {"status":"fail","data":msg}. */
json_object *bw_jsend_fail_text(const char *message);

/* BSON -> JSON for replies.  ObjectId -> 24-hex string; date-time -> ISO-8601
 * UTC string with milliseconds ("2026-11-26T02:31:46.123Z"); int32/int64 ->
 * int; double -> double; bool, null, string, document, array as themselves;
 * anything else -> its relaxed extended JSON; a non-finite double or a date
 * outside struct tm -> null.  bw_json_from_bson returns NULL only on ENOMEM.
 * bw_json_from_bson_iter also returns NULL for a null value (json-c's JSON
 * null is a NULL pointer), so it cannot report ENOMEM apart from that. */
json_object *bw_json_from_bson(const bson_t *doc);
json_object *bw_json_from_bson_iter(const bson_iter_t *iter); /* one value */

/* JSON -> BSON: appends `value` under `key` to `out` (objects become
 * documents, arrays arrays, ints int64, doubles double).  Returns 0 or
 * BW_ENOMEM. */
int bw_json_append_bson(bson_t *out, const char *key, json_object *value);

/* Serialised size of `value` in bytes (compact JSON). */
size_t bw_json_size(json_object *value);

#endif
