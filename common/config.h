/* config.h — one option table per program drives the config file, the
 * command line, --help and --dump-config.
 *
 * Each option has one name used both as the config-file key and as the
 * long option (--max-flows / "max-flows = 1000"). Values are parsed by
 * type with bounds, so a bad value is refused with the option's name and
 * the accepted range, wherever it came from. Precedence: built-in default,
 * then the config file (--config FILE), then the command line; a list
 * option given on the command line replaces the file's list.
 *
 * File format: "key = value" lines; '#' starts a comment; blank lines are
 * ignored; values may be double-quoted; a list option may appear several
 * times. Unknown keys are errors (a typo must not silently do nothing). */
#ifndef VIGIL_CONFIG_H
#define VIGIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_type {
    CFG_BOOL,     /* bool; on the command line a flag, in a file true/false/yes/no/1/0 */
    CFG_UINT,     /* uint64_t, decimal, within [min, max] */
    CFG_DURATION, /* int64_t ns; "15", "15s", "500ms", "10m", "2h", "7d"; bounds in seconds */
    CFG_BYTES,    /* uint64_t; "1048576", "512K", "64M", "1G", "2T" (powers of 1024) */
    CFG_STRING,   /* const char *; NULL when unset */
    CFG_LIST,     /* struct cfg_list: a repeatable string option */
};

#define CFG_LIST_MAX 64

struct cfg_list {
    const char *items[CFG_LIST_MAX];
    unsigned count;
};

enum cfg_flags {
    CFG_CLI_ONLY = 1 << 0,  /* not accepted in a config file (e.g. --read) */
    CFG_NO_DUMP = 1 << 1,   /* not shown by --dump-config */
};

struct cfg_option {
    const char *name;   /* key and long option, e.g. "max-flows" */
    char short_name;    /* single-letter option, or 0 */
    enum cfg_type type;
    size_t offset;      /* where the value lives in the program's options struct */
    const char *def;    /* default, written as a user would (parsed at start), or NULL */
    uint64_t min, max;  /* CFG_UINT and CFG_BYTES: value bounds; CFG_DURATION: seconds */
    const char *arg;    /* placeholder in --help, e.g. "N", "FILE" */
    const char *help;
    unsigned flags;
};

/* Options every program has: --config FILE, --dump-config, --help, --version. */
struct cfg_common {
    const char *config_path;
    bool dump_config;
    bool help;
    bool version;
};

/* Owns the strings read from a config file. */
struct cfg_arena;

/* What cfg_load() decided. */
enum cfg_outcome {
    CFG_RUN = 0,   /* options are ready */
    CFG_EXIT_OK,   /* --help, --version or --dump-config was handled */
    CFG_EXIT_USAGE /* an error was printed to stderr */
};

struct cfg_program {
    const char *name;           /* "vigil-agent" */
    const char *usage;          /* first lines of --help */
    const char *version;
    const struct cfg_option *options; /* terminated by an entry with name == NULL */
    size_t common_offset;       /* where struct cfg_common lives in the options struct */
    const char *default_config; /* read when --config is not given, if it exists; or NULL */
};

/* Sets defaults, reads the config file, applies the command line, handles
 * --help/--version/--dump-config. Positional arguments are refused. On
 * CFG_RUN, *arena owns strings the options point to (free with
 * cfg_arena_free after the options are no longer used). */
enum cfg_outcome cfg_load(const struct cfg_program *prog, void *opts, int argc, char **argv,
                          struct cfg_arena **arena);

void cfg_arena_free(struct cfg_arena *arena);

/* Parses one value of the given option into opts (used by cfg_load and by
 * tests). Returns 0 or VIGIL_EINVAL / VIGIL_ERANGE / VIGIL_EFULL with a
 * message in err. `value` must outlive opts for string types. */
int cfg_set(const struct cfg_option *opt, void *opts, const char *value, char *err, size_t errlen);

/* Reads a config file into opts. Returns 0 or an error with "FILE:LINE: why" in err. */
int cfg_read_file(const struct cfg_program *prog, void *opts, const char *path,
                  struct cfg_arena *arena, char *err, size_t errlen);

void cfg_print_help(const struct cfg_program *prog, FILE *fp);

/* Writes the effective configuration in config-file syntax. */
void cfg_dump(const struct cfg_program *prog, const void *opts, FILE *fp);

/* Parses durations and byte sizes as cfg does (exposed for other inputs,
 * e.g. the CLI's --since 1h). */
int cfg_parse_duration(const char *text, int64_t *ns);
int cfg_parse_bytes(const char *text, uint64_t *bytes);

#endif
