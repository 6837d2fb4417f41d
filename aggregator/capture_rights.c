/* capture_rights.c — the --capture-allow list (see capture_rights.h). */
#include "capture_rights.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"

#define RIGHTS_MAX 4096u /* names with the right: a handful in practice */

struct capture_rights {
    char (*names)[KEY_NAME_MAX + 1];
    size_t n;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

struct capture_rights *capture_rights_load(const char *capture_dir, const char *analysts_dir,
                                           char *err, size_t errlen)
{
    struct capture_rights *r = calloc(1, sizeof *r);
    DIR *d = NULL;
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!capture_dir)
        return r;
    if (!analysts_dir) {
        snprintf(err, errlen,
                 "--capture-allow needs --analysts-allow: the right is given to "
                 "analysts' keys");
        goto fail;
    }
    if (!(d = opendir(capture_dir))) {
        snprintf(err, errlen, "--capture-allow %s: %s", capture_dir, strerror(errno));
        goto fail;
    }
    struct dirent *e;
    size_t cap = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".pub") != 0)
            continue;
        char name[KEY_NAME_MAX + 1], path[4096], apath[4096];
        char key[KEY_Z85_LEN + 1], akey[KEY_Z85_LEN + 1], kerr[256];
        if (len - 4 > KEY_NAME_MAX) {
            snprintf(err, errlen, "--capture-allow: %s: the name is too long", e->d_name);
            goto fail;
        }
        memcpy(name, e->d_name, len - 4);
        name[len - 4] = '\0';
        if (!key_name_valid(name)) {
            snprintf(err, errlen, "--capture-allow: %s: not a valid client name", e->d_name);
            goto fail;
        }
        snprintf(path, sizeof path, "%s/%s", capture_dir, e->d_name);
        snprintf(apath, sizeof apath, "%s/%s", analysts_dir, e->d_name);
        if (key_load_public(path, key, kerr, sizeof kerr) != 0) {
            snprintf(err, errlen, "--capture-allow: %s", kerr);
            goto fail;
        }
        if (key_load_public(apath, akey, kerr, sizeof kerr) != 0 || strcmp(key, akey) != 0) {
            snprintf(err, errlen,
                     "--capture-allow: %s is not the key of an allowed analyst (%s must hold the "
                     "same key)",
                     path, apath);
            goto fail;
        }
        if (r->n == RIGHTS_MAX) {
            snprintf(err, errlen, "--capture-allow: more than %u keys", RIGHTS_MAX);
            goto fail;
        }
        if (r->n == cap) {
            size_t c = cap ? cap * 2 : 8;
            void *p = realloc(r->names, c * sizeof *r->names);
            if (!p) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
            r->names = p;
            cap = c;
        }
        memcpy(r->names[r->n++], name, sizeof name);
    }
    closedir(d);
    qsort(r->names, r->n, sizeof *r->names, by_name);
    return r;
fail:
    if (d)
        closedir(d);
    capture_rights_free(r);
    return NULL;
}

bool capture_rights_allow(const struct capture_rights *r, const struct transport_peer *peer)
{
    if (!r || peer->role != TRANSPORT_ROLE_ANALYST)
        return false;
    return bsearch(peer->name, r->names, r->n, sizeof *r->names, by_name) != NULL;
}

size_t capture_rights_count(const struct capture_rights *r)
{
    return r ? r->n : 0;
}

void capture_rights_free(struct capture_rights *r)
{
    if (!r)
        return;
    free(r->names);
    free(r);
}
