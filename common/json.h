/* json.h — a small, fast writer of flat JSON objects into a fixed buffer.
 *
 * No allocation and no printf on the hot path. Strings are escaped so any
 * bytes (a hostile DNS name, say) still make valid JSON: control characters
 * and bytes above 0x7e become \u00XX. On overflow the writer sets `overflow`
 * and further writes are ignored; the caller checks it once at the end. */
#ifndef VIGIL_JSON_H
#define VIGIL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_writer {
    char *buf;    /* borrowed output buffer */
    size_t cap;
    size_t len;
    bool first;   /* no member written yet in the current object */
    bool overflow;
};

void json_begin(struct json_writer *w, char *buf, size_t cap);
void json_key_str(struct json_writer *w, const char *key, const char *val);
void json_key_strn(struct json_writer *w, const char *key, const char *val, size_t n);
void json_key_u64(struct json_writer *w, const char *key, uint64_t val);
void json_key_i64(struct json_writer *w, const char *key, int64_t val);
void json_key_bool(struct json_writer *w, const char *key, bool val);
/* Exact decimal: val/scale with `decimals` digits (truncated), e.g.
 * nanoseconds as seconds with json_key_decimal(w, k, ns, 1000000000, 6). */
void json_key_decimal(struct json_writer *w, const char *key, int64_t val, uint64_t scale,
                      int decimals);
/* Writes an already-formatted JSON value (number, nested object) verbatim. */
void json_key_raw(struct json_writer *w, const char *key, const char *raw);
/* Closes the object, appends '\n' and a NUL (not counted); returns the
 * length, or 0 on overflow. */
size_t json_end(struct json_writer *w);

#endif
