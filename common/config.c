/* config.c — option tables: defaults, config files, command lines. */
#include "config.h"

#include "clock.h"
#include "err.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CFG_LINE_MAX 4096

struct cfg_arena {
    char **strings;
    size_t count, cap;
};

static char *arena_strdup(struct cfg_arena *a, const char *s)
{
    if (a->count == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        char **n = realloc(a->strings, cap * sizeof *n);
        if (!n)
            return NULL;
        a->strings = n;
        a->cap = cap;
    }
    char *copy = strdup(s);
    if (copy)
        a->strings[a->count++] = copy;
    return copy;
}

void cfg_arena_free(struct cfg_arena *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->count; i++)
        free(a->strings[i]);
    free(a->strings);
    free(a);
}

/* ---- value parsers ---------------------------------------------------- */

static int parse_u64(const char *text, uint64_t *out, const char **rest)
{
    if (!isdigit((unsigned char)text[0]))
        return VIGIL_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno == ERANGE)
        return VIGIL_ERANGE;
    *out = v;
    *rest = end;
    return 0;
}

int cfg_parse_duration(const char *text, int64_t *ns)
{
    uint64_t v;
    const char *unit;
    if (parse_u64(text, &v, &unit) != 0)
        return VIGIL_EINVAL;
    static const struct {
        const char *suffix;
        int64_t ns;
    } units[] = {
        {"", NS_PER_SEC},       {"s", NS_PER_SEC},       {"ms", NS_PER_MS},
        {"us", NS_PER_US},      {"m", 60 * NS_PER_SEC},  {"min", 60 * NS_PER_SEC},
        {"h", 3600 * NS_PER_SEC}, {"d", 86400 * NS_PER_SEC}, {"w", 7 * 86400 * NS_PER_SEC},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].suffix) == 0) {
            if (v > (uint64_t)(INT64_MAX / units[i].ns))
                return VIGIL_ERANGE;
            *ns = (int64_t)v * units[i].ns;
            return 0;
        }
    }
    return VIGIL_EINVAL;
}

int cfg_parse_bytes(const char *text, uint64_t *bytes)
{
    uint64_t v;
    const char *unit;
    if (parse_u64(text, &v, &unit) != 0)
        return VIGIL_EINVAL;
    unsigned shift;
    switch (toupper((unsigned char)unit[0])) {
    case '\0': shift = 0; break;
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: return VIGIL_EINVAL;
    }
    /* "64M", "64MB", "64MiB" are all accepted */
    if (shift && unit[1] != '\0' && strcmp(unit + 1, "B") != 0 && strcmp(unit + 1, "iB") != 0)
        return VIGIL_EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return VIGIL_ERANGE;
    *bytes = v << shift;
    return 0;
}

static int parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return VIGIL_EINVAL;
}

int cfg_set(const struct cfg_option *opt, void *opts, const char *value, char *err, size_t errlen)
{
    char *field = (char *)opts + opt->offset;
    uint64_t u;
    int64_t d;
    int rc;
    switch (opt->type) {
    case CFG_BOOL:
        if (parse_bool(value, (bool *)field) != 0) {
            snprintf(err, errlen, "%s: '%s' is not true or false", opt->name, value);
            return VIGIL_EINVAL;
        }
        return 0;
    case CFG_UINT:
    case CFG_BYTES: {
        const char *rest = "";
        rc = opt->type == CFG_UINT ? parse_u64(value, &u, &rest) : cfg_parse_bytes(value, &u);
        if (rc == 0 && *rest != '\0')
            rc = VIGIL_EINVAL;
        if (rc == 0 && (u < opt->min || u > opt->max))
            rc = VIGIL_ERANGE;
        if (rc != 0) {
            snprintf(err, errlen, "%s: '%s' is not %s from %" PRIu64 " to %" PRIu64, opt->name,
                     value, opt->type == CFG_UINT ? "a number" : "a size", opt->min, opt->max);
            return rc;
        }
        memcpy(field, &u, sizeof u);
        return 0;
    }
    case CFG_DURATION:
        rc = cfg_parse_duration(value, &d);
        if (rc == 0 && (d < (int64_t)opt->min * NS_PER_SEC ||
                        (uint64_t)d > opt->max * (uint64_t)NS_PER_SEC))
            rc = VIGIL_ERANGE;
        if (rc != 0) {
            snprintf(err, errlen,
                     "%s: '%s' is not a duration from %" PRIu64 "s to %" PRIu64
                     "s (e.g. 30s, 10m, 2h)",
                     opt->name, value, opt->min, opt->max);
            return rc;
        }
        memcpy(field, &d, sizeof d);
        return 0;
    case CFG_STRING:
        if (value[0] == '\0') {
            snprintf(err, errlen, "%s: needs a value", opt->name);
            return VIGIL_EINVAL;
        }
        memcpy(field, &value, sizeof value);
        return 0;
    case CFG_LIST: {
        struct cfg_list *l = (struct cfg_list *)field;
        if (l->count >= CFG_LIST_MAX) {
            snprintf(err, errlen, "%s: more than %d values", opt->name, CFG_LIST_MAX);
            return VIGIL_EFULL;
        }
        l->items[l->count++] = value;
        return 0;
    }
    }
    return VIGIL_EINVAL;
}

/* ---- files ------------------------------------------------------------ */

static const struct cfg_option *find_option(const struct cfg_program *prog, const char *name)
{
    for (const struct cfg_option *o = prog->options; o->name; o++)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int cfg_read_file(const struct cfg_program *prog, void *opts, const char *path,
                  struct cfg_arena *arena, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    char line[CFG_LINE_MAX];
    unsigned lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(fp)) {
            snprintf(err, errlen, "%s:%u: line longer than %d bytes", path, lineno, CFG_LINE_MAX);
            rc = VIGIL_EINVAL;
            break;
        }
        char *s = line;
        char *hash = NULL;
        bool quoted = false;
        for (char *p = s; *p; p++) { /* a '#' outside quotes starts a comment */
            if (*p == '"')
                quoted = !quoted;
            else if (*p == '#' && !quoted) {
                hash = p;
                break;
            }
        }
        if (hash)
            *hash = '\0';
        s = trim(s);
        if (*s == '\0')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%u: expected 'key = value'", path, lineno);
            rc = VIGIL_EINVAL;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        const struct cfg_option *o = find_option(prog, key);
        if (!o || (o->flags & CFG_CLI_ONLY)) {
            snprintf(err, errlen, "%s:%u: unknown setting '%s'", path, lineno, key);
            rc = VIGIL_EINVAL;
            break;
        }
        char *owned = arena_strdup(arena, value);
        char why[256];
        if (!owned) {
            rc = VIGIL_ENOMEM;
            snprintf(err, errlen, "%s: out of memory", path);
            break;
        }
        if ((rc = cfg_set(o, opts, owned, why, sizeof why)) != 0) {
            snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
            break;
        }
    }
    fclose(fp);
    return rc;
}

/* ---- the command line ------------------------------------------------- */

static const struct cfg_option common_options[] = {
    {"config", 'c', CFG_STRING, offsetof(struct cfg_common, config_path), NULL, 0, 0, "FILE",
     "read settings from FILE (command-line options override it)", CFG_CLI_ONLY},
    {"dump-config", 0, CFG_BOOL, offsetof(struct cfg_common, dump_config), NULL, 0, 0, NULL,
     "print the effective settings in config-file form and exit", CFG_CLI_ONLY},
    {"help", 'h', CFG_BOOL, offsetof(struct cfg_common, help), NULL, 0, 0, NULL,
     "show this help and exit", CFG_CLI_ONLY},
    {"version", 0, CFG_BOOL, offsetof(struct cfg_common, version), NULL, 0, 0, NULL,
     "show the version and exit", CFG_CLI_ONLY},
    {NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL, 0},
};

/* Finds the option an argument names: "--name", "--name=value", "-x". */
static const struct cfg_option *match_arg(const struct cfg_program *prog, const char *arg,
                                          const char **inline_value, bool *common)
{
    *inline_value = NULL;
    if (arg[0] == '-' && arg[1] == '-') {
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        for (int pass = 0; pass < 2; pass++) {
            const struct cfg_option *o = pass ? common_options : prog->options;
            for (; o->name; o++) {
                if (strlen(o->name) == n && strncmp(o->name, name, n) == 0) {
                    *common = pass == 1;
                    *inline_value = eq ? eq + 1 : NULL;
                    return o;
                }
            }
        }
        return NULL;
    }
    if (arg[0] == '-' && arg[1] && !arg[2]) {
        for (int pass = 0; pass < 2; pass++) {
            const struct cfg_option *o = pass ? common_options : prog->options;
            for (; o->name; o++) {
                if (o->short_name == arg[1]) {
                    *common = pass == 1;
                    return o;
                }
            }
        }
    }
    return NULL;
}

/* Applies the command line; with config_only, only finds --config. */
static int apply_args(const struct cfg_program *prog, void *opts, struct cfg_common *common,
                      int argc, char **argv, bool config_only, bool *lists_cleared)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value;
        bool is_common;
        const struct cfg_option *o = match_arg(prog, arg, &value, &is_common);
        if (!o) {
            if (!config_only)
                fprintf(stderr, "%s: %s '%s' (see --help)\n", prog->name,
                        arg[0] == '-' ? "unknown option" : "unexpected argument", arg);
            return VIGIL_EINVAL;
        }
        if (o->type == CFG_BOOL && !value) {
            value = "true";
        } else if (!value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: option %s needs a value\n", prog->name, arg);
                return VIGIL_EINVAL;
            }
            value = argv[++i];
        }
        if (config_only != (is_common && strcmp(o->name, "config") == 0))
            continue;
        void *target = is_common ? (void *)common : opts;
        if (o->type == CFG_LIST && !is_common && !lists_cleared[o - prog->options]) {
            /* the first command-line value replaces the file's list */
            memset((char *)target + o->offset, 0, sizeof(struct cfg_list));
            lists_cleared[o - prog->options] = true;
        }
        char why[256];
        if (cfg_set(o, target, value, why, sizeof why) != 0) {
            fprintf(stderr, "%s: --%s\n", prog->name, why);
            return VIGIL_EINVAL;
        }
    }
    return 0;
}

static int apply_defaults(const struct cfg_program *prog, void *opts)
{
    for (const struct cfg_option *o = prog->options; o->name; o++) {
        if (!o->def)
            continue;
        char why[256];
        if (cfg_set(o, opts, o->def, why, sizeof why) != 0) {
            fprintf(stderr, "%s: built-in default of %s\n", prog->name, why);
            return VIGIL_EINVAL;
        }
    }
    return 0;
}

enum cfg_outcome cfg_load(const struct cfg_program *prog, void *opts, int argc, char **argv,
                          struct cfg_arena **arena_out)
{
    struct cfg_common *common = (struct cfg_common *)((char *)opts + prog->common_offset);
    size_t nopts = 0;
    while (prog->options[nopts].name)
        nopts++;
    bool *cleared = calloc(nopts + 1, sizeof *cleared);
    struct cfg_arena *arena = calloc(1, sizeof *arena);
    enum cfg_outcome out = CFG_EXIT_USAGE;
    if (!cleared || !arena) {
        fprintf(stderr, "%s: out of memory\n", prog->name);
        goto done;
    }
    if (apply_defaults(prog, opts) != 0)
        goto done;
    /* --config first (errors are reported by the full pass below) */
    (void)apply_args(prog, opts, common, argc, argv, true, cleared);
    const char *path = common->config_path;
    if (!path && prog->default_config && access(prog->default_config, R_OK) == 0)
        path = prog->default_config;
    if (path) {
        char err[512];
        if (cfg_read_file(prog, opts, path, arena, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", prog->name, err);
            goto done;
        }
    }
    if (apply_args(prog, opts, common, argc, argv, false, cleared) != 0)
        goto done;
    if (common->help) {
        cfg_print_help(prog, stdout);
        out = CFG_EXIT_OK;
    } else if (common->version) {
        printf("%s %s\n", prog->name, prog->version);
        out = CFG_EXIT_OK;
    } else if (common->dump_config) {
        cfg_dump(prog, opts, stdout);
        out = CFG_EXIT_OK;
    } else {
        out = CFG_RUN;
    }
done:
    free(cleared);
    if (out == CFG_RUN) {
        *arena_out = arena;
    } else {
        cfg_arena_free(arena);
        *arena_out = NULL;
    }
    return out;
}

/* ---- help and dump ---------------------------------------------------- */

static void print_option_help(const struct cfg_option *o, FILE *fp)
{
    char left[64];
    if (o->short_name)
        snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "");
    else
        snprintf(left, sizeof left, "    --%s%s%s", o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "");
    fprintf(fp, "  %-28s %s", left, o->help);
    if (o->def && o->type != CFG_BOOL)
        fprintf(fp, " (default %s)", o->def);
    if (o->type == CFG_LIST)
        fprintf(fp, " (repeatable)");
    if ((o->flags & CFG_CLI_ONLY) && o->name != common_options[0].name && o->type != CFG_BOOL)
        fprintf(fp, " (command line only)");
    fputc('\n', fp);
}

void cfg_print_help(const struct cfg_program *prog, FILE *fp)
{
    fprintf(fp, "%s\noptions:\n", prog->usage);
    for (const struct cfg_option *o = prog->options; o->name; o++)
        print_option_help(o, fp);
    for (const struct cfg_option *o = common_options; o->name; o++)
        print_option_help(o, fp);
    fprintf(fp, "\nSettings can also come from a config file (--config) as 'name = value' lines;\n"
                "the command line overrides the file. Durations take s, ms, m, h, d; sizes K, M, G.\n");
}

static void dump_duration(FILE *fp, int64_t ns)
{
    if (ns % NS_PER_SEC != 0)
        fprintf(fp, "%" PRId64 "ms", ns / NS_PER_MS);
    else
        fprintf(fp, "%" PRId64 "s", ns / NS_PER_SEC);
}

void cfg_dump(const struct cfg_program *prog, const void *opts, FILE *fp)
{
    fprintf(fp, "# %s %s: effective settings\n", prog->name, prog->version);
    for (const struct cfg_option *o = prog->options; o->name; o++) {
        if (o->flags & (CFG_CLI_ONLY | CFG_NO_DUMP))
            continue;
        const char *field = (const char *)opts + o->offset;
        uint64_t u;
        int64_t d;
        const char *s;
        switch (o->type) {
        case CFG_BOOL: fprintf(fp, "%s = %s\n", o->name, *(const bool *)field ? "true" : "false"); break;
        case CFG_UINT:
        case CFG_BYTES:
            memcpy(&u, field, sizeof u);
            fprintf(fp, "%s = %" PRIu64 "\n", o->name, u);
            break;
        case CFG_DURATION:
            memcpy(&d, field, sizeof d);
            fprintf(fp, "%s = ", o->name);
            dump_duration(fp, d);
            fputc('\n', fp);
            break;
        case CFG_STRING:
            memcpy(&s, field, sizeof s);
            if (s)
                fprintf(fp, "%s = \"%s\"\n", o->name, s);
            else
                fprintf(fp, "# %s =\n", o->name);
            break;
        case CFG_LIST: {
            const struct cfg_list *l = (const struct cfg_list *)field;
            if (l->count == 0)
                fprintf(fp, "# %s =\n", o->name);
            for (unsigned i = 0; i < l->count; i++)
                fprintf(fp, "%s = \"%s\"\n", o->name, l->items[i]);
            break;
        }
        }
    }
}
