/* keygen.c — `vigil keygen`: CurveZMQ key pairs for the aggregator, agents
 * and analysts (key_generate: NAME.key 0600, NAME.pub 0644, the directory
 * 0700 when created, never overwriting without --force).
 *
 * Non-goals: distributing keys (copy NAME.pub into the aggregator's allow
 * list yourself: agents.d/ for agents, analysts.d/ for analysts). */
#include "cli.h"

#include "config.h"
#include "err.h"
#include "transport.h"

#include <stddef.h>
#include <string.h>

struct keygen_options {
    struct cfg_common common;
    const char *out;
    const char *name;
    bool force;
};

#define KOPT(field) offsetof(struct keygen_options, field)

static const struct cfg_option keygen_table[] = {
    {"out", 'o', CFG_STRING, KOPT(out), NULL, 0, 0, "DIR",
     "write NAME.key and NAME.pub here (created 0700 if missing)", CFG_CLI_ONLY},
    {"name", 'n', CFG_STRING, KOPT(name), NULL, 0, 0, "NAME",
     "the key's name: an agent's or analyst's name (default: DIR's last component)",
     CFG_CLI_ONLY},
    {"force", 'f', CFG_BOOL, KOPT(force), NULL, 0, 0, NULL, "replace existing key files",
     CFG_CLI_ONLY},
    {NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct cfg_program keygen_program = {
    .name = "vigil keygen",
    .usage = "usage: vigil keygen --out DIR [--name NAME] [--force]\n"
             "\n"
             "Generates a CurveZMQ key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub\n"
             "(public, 0644). Give the aggregator its pair with --key; put an agent's or an\n"
             "analyst's NAME.pub in the aggregator's --agents-allow or --analysts-allow\n"
             "directory: NAME is then who it is. Examples:\n"
             "  vigil keygen --out /etc/vigil/aggregator               # aggregator.key/.pub\n"
             "  vigil keygen --out /etc/vigil/agents.d --name web-01   # an agent's pair\n"
             "  vigil keygen --out ~/.config/vigil --name alice        # an analyst's pair",
    .version = VIGIL_VERSION,
    .options = keygen_table,
    .common_offset = offsetof(struct keygen_options, common),
    .default_config = NULL,
};

/* The last path component of dir, without trailing slashes. */
static void last_component(const char *dir, char *out, size_t len)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    snprintf(out, len, "%.*s", (int)(n - start), dir + start);
}

int cmd_keygen(int argc, char **argv)
{
    struct keygen_options o = {0};
    struct cfg_arena *arena = NULL;
    char name[KEY_NAME_MAX + 2];
    char err[512];
    int status = CLI_EXIT_FAIL;

    switch (cfg_load(&keygen_program, &o, argc, argv, &arena)) {
    case CFG_RUN: break;
    case CFG_EXIT_OK: return CLI_EXIT_OK;
    default: return CLI_EXIT_USAGE;
    }
    if (!o.out) {
        fprintf(stderr, "vigil keygen: --out DIR is required (see --help)\n");
        status = CLI_EXIT_USAGE;
        goto done;
    }
    if (o.name) {
        snprintf(name, sizeof name, "%s", o.name);
    } else {
        last_component(o.out, name, sizeof name);
        size_t n = strlen(name);
        if (n > 2 && strcmp(name + n - 2, ".d") == 0) {
            /* agents.d, analysts.d: an allow list, not a name */
            fprintf(stderr, "vigil keygen: %s looks like an allow-list directory: give the "
                            "key's name with --name (e.g. --name web-01)\n", o.out);
            status = CLI_EXIT_USAGE;
            goto done;
        }
    }
    if (!key_name_valid(name)) {
        fprintf(stderr,
                "vigil keygen: '%s' is not a key name (1..%d of A-Z a-z 0-9 . _ -, not starting "
                "with '.' or '-')%s\n",
                name, KEY_NAME_MAX, o.name ? "" : ": give one with --name");
        status = CLI_EXIT_USAGE;
        goto done;
    }
    int rc = key_generate(o.out, name, o.force, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "vigil keygen: %s\n", err);
        goto done;
    }
    char path[4096], pub[KEY_Z85_LEN + 1], fp[KEY_FINGERPRINT_LEN + 1];
    snprintf(path, sizeof path, "%s/%s.pub", o.out, name);
    if (key_load_public(path, pub, err, sizeof err) != 0) {
        fprintf(stderr, "vigil keygen: wrote the pair but cannot read it back: %s\n", err);
        goto done;
    }
    key_fingerprint(pub, fp);
    printf("secret key:  %s/%s.key (mode 0600: keep it on the host that uses it)\n", o.out,
           name);
    printf("public key:  %s/%s.pub\n", o.out, name);
    printf("name:        %s\n", name);
    printf("public:      %s\n", pub);
    printf("fingerprint: %s\n", fp);
    status = CLI_EXIT_OK;
done:
    cfg_arena_free(arena);
    return status;
}
