/* httpmsg.c — HTTP/1.1 message heads. */
#include "httpmsg.h"

#include "rng.h"

#include <inttypes.h>
#include <stdio.h>

static const char *const agents[] = {
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)",
    "vigil-gen/0.1",
    "pkg-updater/2.4",
};

size_t http_request_head(char *out, size_t cap, const char *host, uint64_t seed, uint64_t body_len)
{
    struct rng r;
    rng_seed(&r, seed);
    const char *ua = agents[rng_below(&r, sizeof agents / sizeof agents[0])];
    char path[96];
    unsigned n = (unsigned)rng_below(&r, 100000);
    switch (rng_below(&r, 6)) {
    case 0:
        snprintf(path, sizeof path, "/");
        break;
    case 1:
        snprintf(path, sizeof path, "/static/app.%05x.js", n);
        break;
    case 2:
        snprintf(path, sizeof path, "/api/v1/items/%u", n);
        break;
    case 3:
        snprintf(path, sizeof path, "/images/%u.bin", n);
        break;
    case 4:
        snprintf(path, sizeof path, "/download/pkg-%u.tar", n);
        break;
    default:
        snprintf(path, sizeof path, "/index.html?session=%u", n);
        break;
    }
    int len;
    if (body_len)
        len = snprintf(out, cap,
                       "POST /upload/%u HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
                       "Content-Type: application/octet-stream\r\nContent-Length: %" PRIu64
                       "\r\n\r\n",
                       n, host, ua, body_len);
    else
        len = snprintf(out, cap,
                       "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n"
                       "Accept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n",
                       path, host, ua);
    return len < 0 || (size_t)len >= cap ? 0 : (size_t)len;
}

size_t http_response_head(char *out, size_t cap, uint64_t body_len, int created)
{
    int len = snprintf(out, cap,
                       "HTTP/1.1 %s\r\nServer: vigil-gen\r\n"
                       "Content-Type: application/octet-stream\r\nContent-Length: %" PRIu64
                       "\r\nConnection: keep-alive\r\n\r\n",
                       created ? "201 Created" : "200 OK", body_len);
    return len < 0 || (size_t)len >= cap ? 0 : (size_t)len;
}
