/* replay_main.c — runs a fuzz target over stored inputs, without libFuzzer.
 *
 * Each argument is a file or a folder; every regular file found (folders are
 * walked recursively) is read into a buffer of exactly its size and handed to
 * LLVMFuzzerTestOneInput, so a sanitizer build reports any read past the
 * input. This is how ctest replays tests/fuzz/corpus/<target>/ in every build,
 * and how a crash found by libFuzzer is reproduced in a debugger.
 *
 * Exit status: 0 when every input ran (the target aborts the process on a
 * bug), 1 when a file or folder could not be read, 2 on usage error.
 * Non-goals: mutation, coverage, timing: that is libFuzzer's job. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (64u << 20) /* a corpus entry larger than this is a mistake */
#define REPLAY_MAX_DEPTH 8           /* folder nesting followed */

static unsigned long replayed;

/* Reads the whole file and runs the target on it. Returns 0 or -1. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > REPLAY_MAX_INPUT) {
        fprintf(stderr, "replay: %s: cannot size the file or larger than %u bytes\n", path,
                REPLAY_MAX_INPUT);
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    /* Exactly `size` bytes (at least one allocated, so the pointer is never NULL):
     * an over-read by the target lands outside the allocation. */
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL || fread(buf, 1, size, f) != size) {
        fprintf(stderr, "replay: %s: read failed\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, size);
    free(buf);
    replayed++;
    return 0;
}

static int replay_path(const char *path, unsigned depth)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return S_ISREG(st.st_mode) ? replay_file(path) : 0;
    if (depth >= REPLAY_MAX_DEPTH) {
        fprintf(stderr, "replay: %s: folders nested too deep\n", path);
        return -1;
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ".", "..", and hidden files such as .gitkeep */
        size_t need = strlen(path) + 1 + strlen(e->d_name) + 1;
        char *child = malloc(need);
        if (child == NULL) {
            rc = -1;
            break;
        }
        snprintf(child, need, "%s/%s", path, e->d_name);
        if (replay_path(child, depth + 1) != 0)
            rc = -1;
        free(child);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr,
                "usage: %s FILE|FOLDER...\n"
                "Runs the fuzz target once on each file (folders: every file in them).\n",
                argv[0]);
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++)
        if (replay_path(argv[i], 0) != 0)
            rc = 1;
    printf("replay: %lu inputs run%s\n", replayed, rc ? ", some could not be read" : "");
    return rc;
}
