/* json.c — flat JSON object writer. */
#include "json.h"

#include <stdio.h>
#include <string.h>

/* One byte of the buffer is kept for the terminating NUL json_end() writes. */
static void put(struct json_writer *w, const char *s, size_t n)
{
    if (w->overflow || n >= w->cap - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_ch(struct json_writer *w, char c)
{
    put(w, &c, 1);
}

static bool needs_escape(unsigned char c)
{
    return c == '"' || c == '\\' || c < 0x20 || c > 0x7e;
}

static void put_escaped(struct json_writer *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put_ch(w, '"');
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && !needs_escape((unsigned char)s[run]))
            run++;
        put(w, s + i, run - i); /* plain characters go in one copy */
        if (run == n)
            break;
        unsigned char c = (unsigned char)s[run];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(w, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(w, esc, 6);
        }
        i = run + 1;
    }
    put_ch(w, '"');
}

static void put_key(struct json_writer *w, const char *key)
{
    if (!w->first)
        put_ch(w, ',');
    w->first = false;
    put_ch(w, '"');
    put(w, key, strlen(key));
    put(w, "\":", 2);
}

static void put_u64(struct json_writer *w, uint64_t v)
{
    char tmp[20];
    int i = (int)sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(w, tmp + i, sizeof tmp - (size_t)i);
}

void json_begin(struct json_writer *w, char *buf, size_t cap)
{
    *w = (struct json_writer){.buf = buf, .cap = cap, .first = true, .overflow = cap == 0};
    put_ch(w, '{');
}

void json_key_strn(struct json_writer *w, const char *key, const char *val, size_t n)
{
    put_key(w, key);
    put_escaped(w, val, n);
}

void json_key_str(struct json_writer *w, const char *key, const char *val)
{
    json_key_strn(w, key, val, strlen(val));
}

void json_key_u64(struct json_writer *w, const char *key, uint64_t val)
{
    put_key(w, key);
    put_u64(w, val);
}

void json_key_i64(struct json_writer *w, const char *key, int64_t val)
{
    put_key(w, key);
    if (val < 0) {
        put_ch(w, '-');
        put_u64(w, (uint64_t)0 - (uint64_t)val);
    } else {
        put_u64(w, (uint64_t)val);
    }
}

void json_key_bool(struct json_writer *w, const char *key, bool val)
{
    put_key(w, key);
    if (val)
        put(w, "true", 4);
    else
        put(w, "false", 5);
}


void json_key_decimal(struct json_writer *w, const char *key, int64_t val, uint64_t scale,
                      int decimals)
{
    put_key(w, key);
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

void json_key_raw(struct json_writer *w, const char *key, const char *raw)
{
    put_key(w, key);
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
