/* httpmsg.h — HTTP/1.1 request and response heads (RFC 9112).
 *
 * Requests are GETs (or a POST for an upload) with a Host header; responses
 * carry Content-Length so the body that follows frames exactly. Bodies are
 * declared application/octet-stream: their bytes are filler. The path and
 * user agent come from a seed. Non-goals: chunked encoding, compression. */
#ifndef VIGIL_GEN_HTTPMSG_H
#define VIGIL_GEN_HTTPMSG_H

#include <stddef.h>
#include <stdint.h>

/* Writes a GET (body_len == 0) or POST (body_len > 0, followed by that many
 * body bytes) request head for host. Returns its length, or 0 if cap is too small. */
size_t http_request_head(char *out, size_t cap, const char *host, uint64_t seed, uint64_t body_len);

/* Writes a response head announcing body_len bytes of body; `created`
 * answers an upload with 201. Returns its length, or 0. */
size_t http_response_head(char *out, size_t cap, uint64_t body_len, int created);

#endif
