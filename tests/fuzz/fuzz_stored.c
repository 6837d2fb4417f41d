/* fuzz_stored.c — fuzz target for every decoder of what the aggregator
 * reads back from LMDB: a stored flow (flowcodec), a journal value
 * (one contrib, or a run of them: journal.h), a rollup chunk, a forensic capture job, an alert, a
 * baseline and a day's ranking. A damaged or hostile store must give a clean refusal, never a
 * read out of bounds; what decodes must be self-consistent.
 *
 * Input layout: byte 0 picks the decoder (mod 7), the rest is the value
 * (for an alert the first 8 bytes are its key; for a chunk byte 1 picks
 * the key length; for a ranking byte 1 picks the dimension). Each decoder is also re-run on the value with its
 * encoder's output where one exists, which must decode to the same. */
#include "alerts.h"
#include "baseline.h"
#include "capture_job.h"
#include "chunk.h"
#include "err.h"
#include "flowcodec.h"
#include "journal.h"
#include "rank.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond)
{
    if (!cond)
        abort();
}

static void stored_flow(const uint8_t *p, size_t n)
{
    struct sflow f;
    if (flowcodec_decode(p, n, &f) != 0)
        return;
    /* what decodes encodes and decodes again to the same bytes */
    static uint8_t buf[FLOWCODEC_MAX], again[FLOWCODEC_MAX];
    size_t len = flowcodec_encode(&f, buf);
    must(len > 0 && len <= FLOWCODEC_MAX);
    struct sflow g;
    must(flowcodec_decode(buf, len, &g) == 0);
    must(flowcodec_encode(&g, again) == len && memcmp(buf, again, len) == 0);
}

static void journal_entry(const uint8_t *p, size_t n)
{
    static const uint8_t key[8] = {0, 0, 0, 0, 0, 0, 0, 7};
    MDB_val k = {sizeof key, (void *)key}, v = {n, (void *)p};
    struct journal_reader r;
    struct contrib c;
    uint64_t seq = 7, last;
    int rc;
    if (journal_reader_init(&r, &k, &v) != 0)
        return;
    must(journal_last_seq(&k, &v, &last) == 0 && last >= seq);
    while ((rc = journal_reader_next(&r, &c)) == 1)
        must(c.seq == seq++ && seq - 1 <= last);
    must(rc == 0 || rc == VIGIL_EBADMSG);
}

static void chunk(const uint8_t *p, size_t n)
{
    if (n < 1)
        return;
    unsigned klen = 1 + p[0] % 32;
    struct chunk_reader r;
    if (chunk_reader_init(&r, p + 1, n - 1, klen) != 0)
        return;
    const uint8_t *payload;
    size_t plen;
    int rc;
    while ((rc = chunk_reader_next(&r, &payload, &plen)) == 1)
        must(payload >= p && payload + plen <= p + n);
    must(rc == 0 || rc < 0);
}

static void capture_job(const uint8_t *p, size_t n)
{
    struct capture_job j;
    memset(&j, 0, sizeof j);
    if (capture_job_decode(p, n, &j) == 0) {
        uint8_t *out = NULL;
        size_t len = 0;
        if (capture_job_encode(&j, &out, &len) == 0) {
            struct capture_job k;
            memset(&k, 0, sizeof k);
            must(capture_job_decode(out, len, &k) == 0);
            capture_job_clear(&k);
        }
        free(out);
    }
    capture_job_clear(&j);
}

static void alert(const uint8_t *p, size_t n)
{
    if (n < 8)
        return;
    struct alert_row a;
    if (alerts_decode(p, 8, p + 8, n - 8, &a) != 0)
        return;
    must(a.addrs == NULL || (a.addrs >= p && a.addrs + 16u * a.n_addrs <= p + n));
    must(a.json == NULL || (a.json >= (const char *)p && a.json + a.json_len <= (const char *)p + n));
}

static void baseline(const uint8_t *p, size_t n)
{
    struct bl_view v;
    (void)baseline_decode(p, n, &v);
}

static void ranking(const uint8_t *p, size_t n)
{
    if (n < 1)
        return;
    (void)rank_check(p + 1, n - 1, p[0] % DIM_COUNT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* a private copy: decoders must not read past it (ASan sees the end) */
    uint8_t *p = malloc(size - 1 ? size - 1 : 1);
    if (!p)
        return 0;
    memcpy(p, data + 1, size - 1);
    switch (data[0] % 7) {
    case 0: stored_flow(p, size - 1); break;
    case 1: journal_entry(p, size - 1); break;
    case 2: chunk(p, size - 1); break;
    case 3: capture_job(p, size - 1); break;
    case 4: alert(p, size - 1); break;
    case 5: baseline(p, size - 1); break;
    default: ranking(p, size - 1); break;
    }
    free(p);
    return 0;
}
