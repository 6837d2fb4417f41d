/* output.c — JSON lines writer with a large stdio buffer. */
#include "output.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct json_output {
    FILE *fp;
    bool is_stdout;
    int error;       /* first errno seen, 0 if none */
    uint64_t written, lost;
    char *buf;       /* stdio buffer */
};

#define OUTPUT_BUF (1u << 20)

struct json_output *json_output_open(const char *path)
{
    struct json_output *out = calloc(1, sizeof *out);
    if (!out)
        return NULL;
    out->is_stdout = strcmp(path, "-") == 0;
    out->fp = out->is_stdout ? stdout : fopen(path, "w");
    if (!out->fp) {
        int e = errno;
        free(out);
        errno = e;
        return NULL;
    }
    out->buf = malloc(OUTPUT_BUF);
    if (out->buf)
        setvbuf(out->fp, out->buf, _IOFBF, OUTPUT_BUF);
    return out;
}

void json_output_write(struct json_output *out, const struct flow_record *rec)
{
    char line[FLOWREC_JSON_MAX];
    size_t n = flowrec_to_json(rec, line, sizeof line);
    if (out->error || n == 0 || fwrite(line, 1, n, out->fp) != n) {
        if (!out->error) {
            out->error = n == 0 ? EOVERFLOW : (errno ? errno : EIO);
            log_err("writing flow records failed: %s; further records are counted as lost",
                    strerror(out->error));
        }
        out->lost++;
        return;
    }
    out->written++;
}

void json_output_emit(void *ctx, const struct flow_record *rec)
{
    json_output_write(ctx, rec);
}

int json_output_close(struct json_output *out, uint64_t *written, uint64_t *lost)
{
    if (!out)
        return 0;
    if (fflush(out->fp) != 0 && !out->error) {
        out->error = errno ? errno : EIO;
        log_err("writing flow records failed: %s", strerror(out->error));
    }
    if (!out->is_stdout && fclose(out->fp) != 0 && !out->error)
        out->error = errno ? errno : EIO;
    int rc = out->error ? -out->error : 0;
    if (written)
        *written = out->written;
    if (lost)
        *lost = out->lost;
    if (out->is_stdout)
        setvbuf(stdout, NULL, _IONBF, 0); /* the buffer is about to be freed */
    free(out->buf);
    free(out);
    return rc;
}
