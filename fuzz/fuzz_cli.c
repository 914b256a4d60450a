/* Fuzz target: the command-line tool's argument parsing (tools/redis-lock.c).
 *
 * The tool exposes no parse entry point: parse_args(), parse_seconds() and
 * splice_password() are static in tools/redis-lock.c, and the global options (-u, -v,
 * --version) and the subcommand lookup are inline in main(), which goes on to run the
 * command. So this target compiles the tool's source into itself (its main() renamed)
 * and calls the static functions directly. The global-option loop of main() is not
 * reached. (Asked of the CLI's owner: a parse function that main() calls and a fuzzer
 * can call too.)
 *
 * Input: byte 0 picks what to fuzz.
 *   even: a subcommand (byte 0 / 2 mod the table's size); the rest, split at NUL bytes,
 *         is its argv. parse_args must return 0, -1 (--help) or EX_USAGE, and on 0 the
 *         result must be consistent: a non-empty NAME where one is taken, "--" and a
 *         command where one is wanted (inside argv, NULL-terminated), times within
 *         0 .. MAX_SECONDS s (or -1: forever), an exit status 0..255. Every argument is
 *         also given to parse_seconds, checked against strtold.
 *   odd:  splice_password(URL, PASSWORD) (the two split at the first NUL): when URL is a
 *         valid URL without a password, the spliced URL must parse (rl_url_parse) to the
 *         same host, port, db and user, with exactly PASSWORD as its password. */
#include "fuzz.h"
#include "internal.h"

#include <math.h>

#define main redis_lock_tool_main
int redis_lock_tool_main(int argc, char **argv);
#include "redis-lock.c"
#undef main

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
    bool ok = parse_seconds(s, &ms);
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
        FUZZ_CHECK(!ok, "parse_seconds accepted \"%s\"", s);
        return;
    }
    long double v = strtold(s, NULL);
    if (!ok) { /* only refused when too large */
        FUZZ_CHECK(v > (long double)MAX_SECONDS, "parse_seconds refused \"%s\"", s);
        return;
    }
    FUZZ_CHECK(ms >= 0 && ms <= MAX_SECONDS * 1000 + 1000, "\"%s\" gave %lld ms", s,
               (long long)ms);
    long double exact = v * 1000.0L;
    /* rounded up to a whole ms: never shorter than asked, less than 1 ms longer */
    FUZZ_CHECK((long double)ms >= exact - 1e-6L && (long double)ms < exact + 1.0L + 1e-6L,
               "\"%s\" gave %lld ms, expected ceil(%Lf)", s, (long long)ms, exact);
}

static void fuzz_args(const subcommand *sc, const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)sc->name;
    for (size_t i = 0; i <= size && argc < MAX_ARGS;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    if (size == 0)
        argc = 1;

    for (int i = 1; i < argc; i++)
        check_seconds(argv[i]);

    cli_args a;
    memset(&a, 0, sizeof a);
    a.wait_ms = -1;
    a.grace_ms = 5000;
    a.conflict = 1;
    g_verbose = false;
    int rc = parse_args(sc, &a, argc, argv);
    FUZZ_CHECK(rc == 0 || rc == -1 || rc == EX_USAGE, "parse_args returned %d", rc);
    if (rc == 0) {
        if (sc->takes_name)
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
        FUZZ_CHECK(a.wait_ms == -1 || (a.wait_ms >= 0 && a.wait_ms <= MAX_SECONDS * 1000 + 1000),
                   "wait %lld ms", (long long)a.wait_ms);
        FUZZ_CHECK(a.expire_ms >= 0 && a.expire_ms <= MAX_SECONDS * 1000 + 1000,
                   "expire %lld ms", (long long)a.expire_ms);
        FUZZ_CHECK(a.grace_ms >= 0 && a.grace_ms <= MAX_SECONDS * 1000 + 1000, "grace %lld",
                   (long long)a.grace_ms);
        FUZZ_CHECK(a.ttl_ms >= 0 && a.ttl_ms <= MAX_SECONDS * 1000 + 1000, "ttl %lld",
                   (long long)a.ttl_ms);
        FUZZ_CHECK(a.conflict >= 0 && a.conflict <= 255, "exit code %d", a.conflict);
        FUZZ_CHECK(!a.id || a.id[0], "an empty id accepted");
        FUZZ_CHECK(!(a.nowait && a.wait_ms != 0), "-n without a zero wait");
    }
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
    char *out = splice_password(url, pw);
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
            char *out2 = splice_password(url, other);
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
    size_t nsub = sizeof SUBCOMMANDS / sizeof *SUBCOMMANDS;
    if (data[0] & 1)
        fuzz_splice(data + 1, size - 1);
    else
        fuzz_args(&SUBCOMMANDS[(size_t)(data[0] / 2) % nsub], data + 1, size - 1);
    return 0;
}
