/* json.c — flat JSON object writer. */
#include "json.h"

#include <stdio.h>
#include <string.h>

/* Makes room for n more bytes, keeping one for the NUL json_end() writes;
 * on overflow marks the writer and returns NULL. */
static char *reserve(struct json_writer *w, size_t n)
{
    if (w->overflow || n >= w->cap - w->len) {
        w->overflow = true;
        return NULL;
    }
    return w->buf + w->len;
}

static void put(struct json_writer *w, const char *s, size_t n)
{
    char *p = reserve(w, n);
    if (p) {
        memcpy(p, s, n);
        w->len += n;
    }
}

static void put_ch(struct json_writer *w, char c)
{
    put(w, &c, 1);
}

/* Writes a quoted, escaped string; reserves for the worst case (every
 * byte escaped) so the loop writes without further checks. */
static void put_escaped(struct json_writer *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *p = reserve(w, n * 6 + 2);
    if (!p)
        return;
    char *start = p;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') {
            *p++ = (char)c;
        } else if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else {
            memcpy(p, "\\u00", 4);
            p[4] = hex[c >> 4];
            p[5] = hex[c & 15];
            p += 6;
        }
    }
    *p++ = '"';
    w->len += (size_t)(p - start);
}

static void put_key(struct json_writer *w, const char *key, size_t klen)
{
    char *p = reserve(w, klen + 4);
    if (!p)
        return;
    char *start = p;
    if (!w->first)
        *p++ = ',';
    w->first = false;
    *p++ = '"';
    memcpy(p, key, klen);
    p += klen;
    *p++ = '"';
    *p++ = ':';
    w->len += (size_t)(p - start);
}

static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324252627282930"
                                  "31323334353637383940414243444546474849505152535455565758596061"
                                  "6263646566676869707172737475767778798081828384858687888990919293"
                                  "949596979899";

static unsigned decimal_digits(uint64_t v)
{
    unsigned n = 1;
    for (; v >= 10000; v /= 10000)
        n += 4;
    if (v >= 100) {
        n += 2;
        v /= 100;
    }
    return n + (v >= 10);
}

/* Written in place, two digits per step (most numbers in a record are
 * short); counting the digits first spares a copy through memcpy. */
static void put_u64(struct json_writer *w, uint64_t v)
{
    unsigned n = decimal_digits(v);
    char *p = reserve(w, n);
    if (!p)
        return;
    char *e = p + n;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        *--e = digit_pairs[2 * r + 1];
        *--e = digit_pairs[2 * r];
    }
    if (v >= 10) {
        *--e = digit_pairs[2 * v + 1];
        *--e = digit_pairs[2 * v];
    } else {
        *--e = (char)('0' + v);
    }
    w->len += n;
}

void json_begin(struct json_writer *w, char *buf, size_t cap)
{
    *w = (struct json_writer){.buf = buf, .cap = cap, .first = true, .overflow = cap == 0};
    put_ch(w, '{');
}

void json__key_strn(struct json_writer *w, const char *key, size_t klen, const char *val,
                    size_t n)
{
    put_key(w, key, klen);
    put_escaped(w, val, n);
}

void json__key_plain(struct json_writer *w, const char *key, size_t klen, const char *val,
                     size_t n)
{
    put_key(w, key, klen);
    char *p = reserve(w, n + 2);
    if (!p)
        return;
    p[0] = '"';
    memcpy(p + 1, val, n);
    p[n + 1] = '"';
    w->len += n + 2;
}

void json__key_u64(struct json_writer *w, const char *key, size_t klen, uint64_t val)
{
    put_key(w, key, klen);
    put_u64(w, val);
}

void json__key_i64(struct json_writer *w, const char *key, size_t klen, int64_t val)
{
    put_key(w, key, klen);
    if (val < 0) {
        put_ch(w, '-');
        put_u64(w, (uint64_t)0 - (uint64_t)val);
    } else {
        put_u64(w, (uint64_t)val);
    }
}

void json__key_bool(struct json_writer *w, const char *key, size_t klen, bool val)
{
    put_key(w, key, klen);
    if (val)
        put(w, "true", 4);
    else
        put(w, "false", 5);
}


void json__key_decimal(struct json_writer *w, const char *key, size_t klen, int64_t val,
                       uint64_t scale, int decimals)
{
    put_key(w, key, klen);
    uint64_t mag = val < 0 ? (uint64_t)0 - (uint64_t)val : (uint64_t)val;
    if (val < 0)
        put_ch(w, '-');
    put_u64(w, mag / scale);
    uint64_t frac = mag % scale, div = scale;
    char digits[20];
    for (int i = 0; i < decimals && i < 19; i++) {
        div /= 10;
        digits[i] = (char)('0' + (div ? frac / div % 10 : 0));
    }
    if (decimals > 0) {
        put_ch(w, '.');
        put(w, digits, (size_t)(decimals < 19 ? decimals : 19));
    }
}

void json__key_raw(struct json_writer *w, const char *key, size_t klen, const char *raw)
{
    put_key(w, key, klen);
    put(w, raw, strlen(raw));
}

size_t json_end(struct json_writer *w)
{
    put(w, "}\n", 2);
    if (w->overflow)
        return 0;
    w->buf[w->len] = '\0';
    return w->len;
}
