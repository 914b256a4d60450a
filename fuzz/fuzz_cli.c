/* Fuzz target: the command-line tool's parser (tools/redis-lock/options.c), linked as the
 * tool's parser library, and cli_splice_password (tools/redis-lock/connect.c).
 *
 * Input: byte 0 picks what to fuzz.
 *   even: a command (byte 0 / 2 mod the number of commands); the rest, split at NUL bytes,
 *         is its argv. cli_parse("redis-lock", COMMAND, args...) must return 0 or EX_USAGE,
 *         and on 0 the result must be consistent: the command's help, or a non-empty NAME
 *         where one is taken, "--" and a command where one is wanted (inside argv,
 *         NULL-terminated), times within 0 .. CLI_MAX_SECONDS s (or -1: forever), an exit
 *         status 0..255. Every argument is also given to cli_parse_seconds, checked
 *         against strtold. Then the same pieces go to cli_parse with no command in front
 *         ("redis-lock", args...), which fuzzes the global options (-u, -v, -h, --version
 *         before the command) and the command lookup: the same checks, and a help text
 *         for whatever help was asked.
 *   odd:  cli_splice_password(URL, PASSWORD) (the two split at the first NUL): when URL is
 *         a valid URL without a password, the spliced URL must parse (rl_url_parse) to the
 *         same host, port, db and user, with exactly PASSWORD as its password. */
#include "fuzz.h"
#include "internal.h"
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#define MAX_ARGS 64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* The tool's usage errors go to stderr. The corpus replay silences them (unless
     * RL_FUZZ_VERBOSE); under libFuzzer use -close_fd_mask=2, which keeps its reports. */
#ifdef RL_FUZZ_REPLAY
    if (!getenv("RL_FUZZ_VERBOSE"))
        if (!freopen("/dev/null", "w", stderr))
            return 0;
#endif
    return 0;
}

static void check_seconds(const char *s)
{
    int64_t ms = -12345;
    bool ok = cli_parse_seconds(s, &ms);
    bool grammar = s[0] != '\0';
    size_t digits = 0, dots = 0;
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digits++;
        else if (*p == '.')
            dots++;
        else
            grammar = false;
    }
    if (dots > 1 || digits == 0 || (dots == 1 && strchr(s, '.') != strrchr(s, '.')))
        grammar = false;
    if (!grammar) {
        FUZZ_CHECK(!ok, "cli_parse_seconds accepted \"%s\"", s);
        return;
    }
    long double v = strtold(s, NULL);
    if (!ok) { /* only refused when too large */
        FUZZ_CHECK(v > (long double)CLI_MAX_SECONDS, "cli_parse_seconds refused \"%s\"", s);
        return;
    }
    FUZZ_CHECK(ms >= 0 && ms <= CLI_MAX_SECONDS * 1000 + 1000, "\"%s\" gave %lld ms", s,
               (long long)ms);
    long double exact = v * 1000.0L;
    /* rounded up to a whole ms: never shorter than asked, less than 1 ms longer */
    FUZZ_CHECK((long double)ms >= exact - 1e-6L && (long double)ms < exact + 1.0L + 1e-6L,
               "\"%s\" gave %lld ms, expected ceil(%Lf)", s, (long long)ms, exact);
}

#define MS_OK(v) ((v) >= 0 && (v) <= CLI_MAX_SECONDS * 1000 + 1000)

/* cli_parse on argv[0..argc), with the checks of a successful parse. */
static void parse_and_check(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, &a);
    FUZZ_CHECK(rc == 0 || rc == EX_USAGE, "cli_parse returned %d", rc);
    if (rc)
        return;
    if (a.what == CLI_VERSION)
        return;
    if (a.what == CLI_HELP) {
        char *help = cli_help_text(a.spec);
        FUZZ_CHECK(help && strncmp(help, "usage: redis-lock ", 18) == 0, "bad help text");
        if (a.spec)
            FUZZ_CHECK(strncmp(help + 18, a.spec->name, strlen(a.spec->name)) == 0,
                       "help of another command");
        free(help);
        return;
    }
    FUZZ_CHECK(a.what == CLI_RUN_COMMAND && a.spec == &cli_commands[a.command], "bad result");
    const cli_command_spec *sc = a.spec;
    if (sc->arg_name)
        FUZZ_CHECK(a.name && a.name[0], "%s: accepted without a NAME", sc->name);
    else
        FUZZ_CHECK(!a.name, "%s: took a NAME it does not use", sc->name);
    if (sc->wants_cmd) {
        FUZZ_CHECK(a.dashdash && a.ncmd > 0 && a.cmd > argv && a.cmd + a.ncmd == argv + argc &&
                       a.cmd[a.ncmd] == NULL,
                   "%s: bad command vector", sc->name);
    } else {
        FUZZ_CHECK(a.ncmd == 0, "%s: a command where none is wanted", sc->name);
    }
    FUZZ_CHECK(a.wait_ms == -1 || MS_OK(a.wait_ms), "wait %lld ms", (long long)a.wait_ms);
    FUZZ_CHECK(MS_OK(a.expire_ms), "expire %lld ms", (long long)a.expire_ms);
    FUZZ_CHECK(MS_OK(a.grace_ms), "grace %lld", (long long)a.grace_ms);
    FUZZ_CHECK(MS_OK(a.ttl_ms), "ttl %lld", (long long)a.ttl_ms);
    FUZZ_CHECK(a.conflict >= 0 && a.conflict <= 255, "exit code %d", a.conflict);
    FUZZ_CHECK(!a.id || a.id[0], "an empty id accepted");
    FUZZ_CHECK(!(a.nowait && a.wait_ms != 0), "-n without a zero wait");
}

static void fuzz_args(const cli_command_spec *sc, const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 3];
    int argc = 0;
    argv[argc++] = (char *)"redis-lock";
    argv[argc++] = (char *)sc->name;
    for (size_t i = 0; size && i <= size && argc < MAX_ARGS + 2;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;

    for (int i = 2; i < argc; i++)
        check_seconds(argv[i]);
    parse_and_check(argc, argv);
    /* the same pieces with no command in front: global options, then whatever comes */
    argv[1] = argv[0];
    parse_and_check(argc - 1, argv + 1);
    free(buf);
}

static bool same(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static void fuzz_splice(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 2);
    if (!buf)
        return;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = '\0';
    const char *url = buf, *pw = buf + strlen(buf) + 1;
    if (pw > buf + size)
        pw = buf + size + 1; /* no NUL in the input: an empty password */
    if (!*pw) {
        free(buf);
        return; /* the tool splices only a non-empty $REDISCLI_AUTH */
    }
    char *out = cli_splice_password(url, pw);
    rl_url u, v;
    if (rl_url_parse(&u, url) == 0) {
        if (!u.password) {
            FUZZ_CHECK(out != NULL, "no splice into %s", url);
            int rc = rl_url_parse(&v, out);
            FUZZ_CHECK(rc == 0, "spliced URL does not parse: %s", redis_lock_last_error());
            FUZZ_CHECK(v.password && strcmp(v.password, pw) == 0,
                       "spliced URL has another password");
            FUZZ_CHECK(same(u.user, v.user) && strcmp(u.host, v.host) == 0 &&
                           u.port == v.port && u.db == v.db &&
                           u.unix_socket == v.unix_socket,
                       "spliced URL names another server: %s vs %s", u.masked, v.masked);
            /* the masked form does not depend on the password: splice another one */
            const char *other = strcmp(pw, "Zz9") == 0 ? "Yy8" : "Zz9";
            char *out2 = cli_splice_password(url, other);
            rl_url w;
            FUZZ_CHECK(out2 && rl_url_parse(&w, out2) == 0, "second splice failed");
            FUZZ_CHECK(strcmp(w.masked, v.masked) == 0,
                       "the masked spliced URL shows the password: %s vs %s", v.masked,
                       w.masked);
            rl_url_free(&w);
            free(out2);
            rl_url_free(&v);
        } else {
            FUZZ_CHECK(out == NULL, "spliced into a URL that has a password");
        }
        rl_url_free(&u);
    }
    if (out) {
        explicit_bzero(out, strlen(out));
        free(out);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096)
        return 0;
    if (data[0] & 1)
        fuzz_splice(data + 1, size - 1);
    else
        fuzz_args(&cli_commands[(size_t)(data[0] / 2) % CMD_COUNT], data + 1, size - 1);
    return 0;
}
