/* test_config.c — option tables: values, bounds, files, precedence. */
#include "clock.h"
#include "config.h"
#include "err.h"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct opts {
    struct cfg_common common;
    uint64_t count;
    uint64_t size;
    int64_t wait;
    const char *name;
    bool flag;
    struct cfg_list nets;
    const char *only_cli;
};

static const struct cfg_option table[] = {
    {"count", 'n', CFG_UINT, offsetof(struct opts, count), "10", 1, 100, "N", "a count", 0},
    {"size", 0, CFG_BYTES, offsetof(struct opts, size), "1M", 1024, 1ull << 40, "SIZE", "a size", 0},
    {"wait", 0, CFG_DURATION, offsetof(struct opts, wait), "15s", 1, 86400, "TIME", "a wait", 0},
    {"name", 0, CFG_STRING, offsetof(struct opts, name), NULL, 0, 0, "NAME", "a name", 0},
    {"flag", 'f', CFG_BOOL, offsetof(struct opts, flag), NULL, 0, 0, NULL, "a flag", 0},
    {"net", 'l', CFG_LIST, offsetof(struct opts, nets), NULL, 0, 0, "CIDR", "a net", 0},
    {"read", 'r', CFG_STRING, offsetof(struct opts, only_cli), NULL, 0, 0, "FILE", "cli", CFG_CLI_ONLY},
    {NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct cfg_program prog = {
    .name = "test",
    .usage = "usage: test",
    .version = "0",
    .options = table,
    .common_offset = offsetof(struct opts, common),
};

static char conf_path[64];

static void write_conf(const char *text)
{
    strcpy(conf_path, "/tmp/vigil-test-config.XXXXXX");
    int fd = mkstemp(conf_path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static enum cfg_outcome load(struct opts *o, int argc, char **argv, struct cfg_arena **arena)
{
    memset(o, 0, sizeof *o);
    return cfg_load(&prog, o, argc, argv, arena);
}

Test(config, durations_and_sizes)
{
    int64_t ns;
    uint64_t b;
    cr_assert_eq(cfg_parse_duration("90", &ns), 0);
    cr_assert_eq(ns, 90 * NS_PER_SEC);
    cr_assert_eq(cfg_parse_duration("500ms", &ns), 0);
    cr_assert_eq(ns, 500 * NS_PER_MS);
    cr_assert_eq(cfg_parse_duration("2h", &ns), 0);
    cr_assert_eq(ns, 7200 * NS_PER_SEC);
    cr_assert_eq(cfg_parse_duration("7d", &ns), 0);
    cr_assert_neq(cfg_parse_duration("5 s", &ns), 0);
    cr_assert_neq(cfg_parse_duration("-5s", &ns), 0);
    cr_assert_neq(cfg_parse_duration("99999999999999999999d", &ns), 0);
    cr_assert_eq(cfg_parse_bytes("64M", &b), 0);
    cr_assert_eq(b, 64u << 20);
    cr_assert_eq(cfg_parse_bytes("1GiB", &b), 0);
    cr_assert_eq(b, 1u << 30);
    cr_assert_neq(cfg_parse_bytes("1X", &b), 0);
    cr_assert_neq(cfg_parse_bytes("99999999999T", &b), 0);
}

Test(config, defaults_then_file_then_command_line)
{
    write_conf("# a comment\ncount = 20\nname = \"from # file\"  # trailing\nnet = 10.0.0.0/8\n"
               "net = 192.168.0.0/16\nwait = 2m\n");
    struct opts o;
    struct cfg_arena *arena;
    char *argv[] = {"test", "-c", conf_path, "--count=30", "-f", NULL};
    cr_assert_eq(load(&o, 5, argv, &arena), CFG_RUN);
    cr_assert_eq(o.count, 30, "the command line overrides the file");
    cr_assert_eq(o.size, 1u << 20, "defaults apply");
    cr_assert_eq(o.wait, 120 * NS_PER_SEC);
    cr_assert_str_eq(o.name, "from # file");
    cr_assert(o.flag);
    cr_assert_eq(o.nets.count, 2);
    cfg_arena_free(arena);

    char *argv2[] = {"test", "-c", conf_path, "-l", "172.16.0.0/12", NULL};
    cr_assert_eq(load(&o, 5, argv2, &arena), CFG_RUN);
    cr_assert_eq(o.nets.count, 1, "a list on the command line replaces the file's");
    cr_assert_str_eq(o.nets.items[0], "172.16.0.0/12");
    cfg_arena_free(arena);
    unlink(conf_path);
}

Test(config, refuses_bad_input, .init = cr_redirect_stderr)
{
    struct opts o;
    struct cfg_arena *arena;
    char *bad_value[] = {"test", "--count", "101", NULL};
    cr_assert_eq(load(&o, 3, bad_value, &arena), CFG_EXIT_USAGE);
    char *unknown[] = {"test", "--nope", NULL};
    cr_assert_eq(load(&o, 2, unknown, &arena), CFG_EXIT_USAGE);
    char *missing[] = {"test", "--name", NULL};
    cr_assert_eq(load(&o, 2, missing, &arena), CFG_EXIT_USAGE);
    char *positional[] = {"test", "stray", NULL};
    cr_assert_eq(load(&o, 2, positional, &arena), CFG_EXIT_USAGE);

    write_conf("count = 5\nread = /etc/passwd\n");
    char *cli_only_in_file[] = {"test", "--config", conf_path, NULL};
    cr_assert_eq(load(&o, 3, cli_only_in_file, &arena), CFG_EXIT_USAGE);
    unlink(conf_path);
    write_conf("count 5\n");
    cr_assert_eq(load(&o, 3, cli_only_in_file, &arena), CFG_EXIT_USAGE);
    unlink(conf_path);
    char *no_file[] = {"test", "--config", "/nonexistent/vigil.conf", NULL};
    cr_assert_eq(load(&o, 3, no_file, &arena), CFG_EXIT_USAGE);
}

Test(config, dump_is_readable_back, .init = cr_redirect_stdout)
{
    struct opts o, again;
    struct cfg_arena *arena, *arena2;
    char *argv[] = {"test", "--wait", "1500ms", "-l", "10.0.0.0/8", "--name", "x y", NULL};
    cr_assert_eq(load(&o, 7, argv, &arena), CFG_RUN);
    char path[] = "/tmp/vigil-test-dump.XXXXXX";
    int fd = mkstemp(path);
    FILE *fp = fdopen(fd, "w");
    cfg_dump(&prog, &o, fp);
    fclose(fp);
    char *argv2[] = {"test", "-c", path, NULL};
    cr_assert_eq(load(&again, 3, argv2, &arena2), CFG_RUN);
    cr_assert_eq(again.wait, o.wait);
    cr_assert_eq(again.count, o.count);
    cr_assert_eq(again.size, o.size);
    cr_assert_str_eq(again.name, "x y");
    cr_assert_eq(again.nets.count, 1);
    unlink(path);
    cfg_arena_free(arena);
    cfg_arena_free(arena2);
}
