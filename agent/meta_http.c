/* meta_http.c — the Host of an HTTP/1.x request.
 *
 * Reads the request line and the header section that were captured, and
 * returns the Host field's value without its port, lower-cased (host names
 * are case-insensitive, RFC 9110 §4.2.3). Non-goals: the target URI, other
 * fields, HTTP/2 (binary, and over TLS in practice), responses. */
#include "meta.h"

#include "cursor.h"

#include <string.h>

/* RFC 9110 §9: the methods worth recognising; the method token is
 * case-sensitive, and the request line puts one SP after it. */
static const char *const methods[] = {
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
};

/* Matches a method and its SP at the start of c. Returns META_OK and moves
 * c past the SP; META_MORE if c is shorter than, but agrees with, some
 * "METHOD SP"; META_NOT otherwise. */
static enum meta_result match_method(struct cursor *c)
{
    size_t left = cur_left(c);
    bool prefix = false;

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        size_t n = strlen(methods[i]);
        uint8_t sp;
        if (cur_peek_u8(c, n, &sp)) {
            if (memcmp(c->p, methods[i], n) == 0 && sp == ' ') {
                cur_skip(c, n + 1);
                return META_OK;
            }
        } else if (memcmp(c->p, methods[i], left) == 0) {
            prefix = true;
        }
    }
    return prefix ? META_MORE : META_NOT;
}

/* Splits the next line off c into *line (without CR LF or a bare LF).
 * Returns false, leaving c alone, when no line end was captured. */
static bool next_line(struct cursor *c, struct cursor *line)
{
    const uint8_t *lf = memchr(c->p, '\n', cur_left(c));
    uint8_t last;

    if (lf == NULL)
        return false;
    cur_sub(c, (size_t)(lf - c->p), line);
    cur_skip(c, 1);
    if (cur_left(line) > 0 && cur_peek_u8(line, cur_left(line) - 1, &last) && last == '\r')
        line->end--;
    return true;
}

static bool is_ows(uint8_t ch)
{
    return ch == ' ' || ch == '\t';
}

/* Does the line start with field name `name` (case-insensitive) directly
 * followed by ':' (RFC 9112 §5.1 allows no space before the colon)? If so,
 * moves *line past the colon. */
static bool field_is(struct cursor *line, const char *name)
{
    size_t n = strlen(name);
    uint8_t ch;

    if (!cur_peek_u8(line, n, &ch) || ch != ':')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!cur_peek_u8(line, i, &ch))
            return false;
        if (ch >= 'A' && ch <= 'Z')
            ch = (uint8_t)(ch - 'A' + 'a');
        if (ch != (uint8_t)name[i])
            return false;
    }
    cur_skip(line, n + 1);
    return true;
}

/* RFC 9110 §7.2: Host = uri-host [ ":" port ], where uri-host may be an
 * IP-literal in brackets (RFC 3986 §3.2.2). Keeps the brackets of an IPv6
 * literal, drops OWS around the value and the ":port". */
static void copy_host(struct cursor v, char host[FLOWREC_NAME_MAX])
{
    const uint8_t *p;
    size_t n;
    uint8_t ch;

    while (cur_peek_u8(&v, 0, &ch) && is_ows(ch))
        cur_skip(&v, 1);
    while (cur_left(&v) > 0 && cur_peek_u8(&v, cur_left(&v) - 1, &ch) && is_ows(ch))
        v.end--;
    n = cur_left(&v);
    if (cur_peek_u8(&v, 0, &ch) && ch == '[') {
        p = memchr(v.p, ']', n);
        if (p != NULL)
            n = (size_t)(p - v.p) + 1;
    } else {
        p = memchr(v.p, ':', n);
        if (p != NULL)
            n = (size_t)(p - v.p);
    }
    meta__copy_printable(host, FLOWREC_NAME_MAX, v.p, n, true);
}

/* RFC 9112 §3 request line "method SP request-target SP HTTP-version",
 * then §5 field lines up to an empty line.
 *
 * Returns META_OK with the Host value in host ("" when the header section
 * ended without one, as an HTTP/1.0 request may); META_MORE when the bytes
 * are the start of a request but end before the Host line or the end of
 * the header section; META_NOT when they are not an HTTP/1.x request. */
enum meta_result meta_http_request(const uint8_t *data, size_t len, char host[FLOWREC_NAME_MAX])
{
    struct cursor c = cur_make(data, len);
    struct cursor line;
    enum meta_result r;
    uint8_t first;

    host[0] = '\0';
    if (data == NULL)
        return META_NOT;
    r = match_method(&c);
    if (r != META_OK)
        return r;
    /* The request target starts right after the one SP. */
    if (cur_peek_u8(&c, 0, &first) && (first == ' ' || first == '\r' || first == '\n'))
        return META_NOT;
    if (!next_line(&c, &line))
        return META_MORE;
    /* A complete request line must end in " HTTP/1.x" (HTTP/0.9 has no
     * headers, so no Host to find). */
    if (cur_left(&line) < 9 || memcmp(line.end - 9, " HTTP/1.", 8) != 0)
        return META_NOT;

    while (next_line(&c, &line)) {
        if (cur_left(&line) == 0)
            return META_OK; /* end of the header section, no Host */
        if (field_is(&line, "host")) {
            copy_host(line, host);
            return META_OK;
        }
    }
    /* The header section goes on past the captured bytes; a Host line cut
     * in the middle is not trusted either, it may lose its tail. */
    return META_MORE;
}
