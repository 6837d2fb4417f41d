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

/* The functions below take the key's length from the json_key_* wrappers,
 * which compute it from literal keys at compile time. */
void json__key_strn(struct json_writer *w, const char *key, size_t klen, const char *val,
                    size_t n);
void json__key_plain(struct json_writer *w, const char *key, size_t klen, const char *val,
                     size_t n);
void json__key_u64(struct json_writer *w, const char *key, size_t klen, uint64_t val);
void json__key_i64(struct json_writer *w, const char *key, size_t klen, int64_t val);
void json__key_bool(struct json_writer *w, const char *key, size_t klen, bool val);
void json__key_decimal(struct json_writer *w, const char *key, size_t klen, int64_t val,
                       uint64_t scale, int decimals);
void json__key_raw(struct json_writer *w, const char *key, size_t klen, const char *raw);

static inline void json_key_strn(struct json_writer *w, const char *key, const char *val,
                                 size_t n)
{
    json__key_strn(w, key, __builtin_strlen(key), val, n);
}

static inline void json_key_str(struct json_writer *w, const char *key, const char *val)
{
    json__key_strn(w, key, __builtin_strlen(key), val, __builtin_strlen(val));
}

/* A string the program made itself (a timestamp, an address, an enum name)
 * that needs no escaping: only printable ASCII without '"' or '\\'. */
static inline void json_key_plain(struct json_writer *w, const char *key, const char *val)
{
    json__key_plain(w, key, __builtin_strlen(key), val, __builtin_strlen(val));
}

static inline void json_key_u64(struct json_writer *w, const char *key, uint64_t val)
{
    json__key_u64(w, key, __builtin_strlen(key), val);
}

static inline void json_key_i64(struct json_writer *w, const char *key, int64_t val)
{
    json__key_i64(w, key, __builtin_strlen(key), val);
}

static inline void json_key_bool(struct json_writer *w, const char *key, bool val)
{
    json__key_bool(w, key, __builtin_strlen(key), val);
}

/* Exact decimal: val/scale with `decimals` digits (truncated), e.g.
 * nanoseconds as seconds with json_key_decimal(w, k, ns, 1000000000, 6). */
static inline void json_key_decimal(struct json_writer *w, const char *key, int64_t val,
                                    uint64_t scale, int decimals)
{
    json__key_decimal(w, key, __builtin_strlen(key), val, scale, decimals);
}

/* Writes an already-formatted JSON value (number, nested object) verbatim. */
static inline void json_key_raw(struct json_writer *w, const char *key, const char *raw)
{
    json__key_raw(w, key, __builtin_strlen(key), raw);
}

/* Closes the object, appends '\n' and a NUL (not counted); returns the
 * length, or 0 on overflow. */
size_t json_end(struct json_writer *w);

#endif
