/* The command line: one table of options and one of commands. Parsing, the checks of
 * what each command needs, and the help texts all come from these two tables; nothing
 * here runs a command or connects anywhere (the fuzzer links this file). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

typedef enum {
    O_NONE,
    O_WAIT,
    O_NOWAIT,
    O_EXPIRE,
    O_NORENEW,
    O_GRACE,
    O_FENCING,
    O_ID,
    O_EXITCODE,
    O_QUIET,
    O_JSON,
    O_YES,
    O_TTL,
    O_REFRESH,
    O_URL,
    O_VERBOSE,
    O_HELP,
    O_VERSION,
    O_FAIR,
    O_SHARED,
    O_LIMIT,
    O_COUNT
} option_id;

typedef enum {
    K_FLAG,        /* bool field */
    K_SECONDS,     /* int64_t ms field, and the bool set_field */
    K_EXIT_STATUS, /* int field, 0..255 */
    K_ID,          /* const char * field, not empty */
    K_STRING,      /* const char * field */
    K_LIMIT,       /* int field, 1..CLI_MAX_LIMIT */
    K_HELP,
    K_VERSION,
} option_kind;

typedef struct {
    char short_name; /* 0: none */
    const char *long_name;
    const char *arg; /* the value's name in help texts; NULL: takes no value */
    option_kind kind;
    size_t field;     /* offsetof(cli_args, ...) */
    size_t set_field; /* offsetof a bool that tells it was given; 0: none */
    const char *help; /* lines separated by \n */
} cli_option;

#define F(field) offsetof(cli_args, field)

static const cli_option OPTIONS[O_COUNT] = {
    [O_WAIT] = {'w', "wait", "SEC", K_SECONDS, F(wait_ms), F(wait_set),
                "wait at most SEC seconds (fractions allowed; default: forever)"},
    [O_NOWAIT] = {'n', "no-wait", NULL, K_FLAG, F(nowait), 0, "try once (same as -w 0)"},
    [O_EXPIRE] = {'x', "expire", "SEC", K_SECONDS, F(expire_ms), F(expire_set),
                  "the lock's expiry"},
    [O_NORENEW] = {0, "no-renew", NULL, K_FLAG, F(no_renew), 0,
                   "do not renew: the lock expires SEC after it was taken"},
    [O_GRACE] = {0, "grace", "SEC", K_SECONDS, F(grace_ms), 0,
                 "after a lost lock, SIGKILL CMD this long after SIGTERM (default 5)"},
    [O_FENCING] = {0, "fencing", NULL, K_FLAG, F(fencing), 0,
                   "hand CMD a fencing token in REDIS_LOCK_TOKEN"},
    [O_ID] = {'i', "id", "ID", K_ID, F(id), 0,
              "the owner id to store (default: 24 random characters)"},
    [O_EXITCODE] = {'E', "conflict-exit-code", "CODE", K_EXIT_STATUS, F(conflict), 0,
                    "exit status when busy or timed out (default 1)"},
    [O_QUIET] = {'q', "quiet", NULL, K_FLAG, F(quiet), 0,
                 "say nothing when the lock is busy or the wait timed out"},
    [O_JSON] = {0, "json", NULL, K_FLAG, F(json), 0,
                "print {\"name\":...,\"held\":...,\"owner\":...,\"ttl_ms\":...}\n"
                "(owner null when free; ttl_ms null when free or no expiry)"},
    [O_YES] = {0, "yes", NULL, K_FLAG, F(yes), 0, "confirm (required when stdin is a terminal)"},
    [O_TTL] = {'t', "ttl", "SEC", K_SECONDS, F(ttl_ms), F(ttl_set),
               "how long the value lives (more than 0; required)"},
    [O_REFRESH] = {0, "refresh", NULL, K_FLAG, F(refresh), 0,
                   "compute now even if a value is cached"},
    [O_URL] = {'u', "url", "URL", K_STRING, F(url), 0,
               "Redis URL (default: $REDIS_URL, else " CLI_DEFAULT_URL ")"},
    [O_VERBOSE] = {'v', "verbose", NULL, K_FLAG, F(verbose), 0,
                   "log each step on stderr, with timestamps"},
    [O_HELP] = {'h', "help", NULL, K_HELP, 0, 0, "this help"},
    [O_VERSION] = {0, "version", NULL, K_VERSION, 0, 0, "print the version"},
    [O_FAIR] = {0, "fair", NULL, K_FLAG, F(fair), 0,
                "a fair lock: waiters get it in arrival order"},
    [O_SHARED] = {'s', "shared", NULL, K_FLAG, F(shared), 0,
                  "a shared hold: many at once, none while an exclusive\n"
                  "holder (a plain run/acquire of NAME) holds or waits"},
    [O_LIMIT] = {0, "limit", "N", K_LIMIT, F(limit), 0,
                 "a permit of the semaphore NAME: at most N holders"},
};

/* An option a command takes, with its help text when it differs from the table's. */
struct cli_command_option {
    option_id id;
    const char *help;
};

/* Every command takes these too, after its own. */
static const struct cli_command_option COMMON[] = {{O_URL, NULL}, {O_VERBOSE, NULL},
                                                   {O_HELP, NULL}, {O_NONE, NULL}};
/* Before the command. */
static const struct cli_command_option GLOBAL[] = {
    {O_URL, "redis://[[user]:pass@]host[:port][/db] or\n"
            "unix://[[user]:pass@]/path[?db=N]; rediss://... over TLS\n"
            "(?cacert=PATH, cacertdir, cert, key, sni, insecure=1)\n"
            "(default: $REDIS_URL, else " CLI_DEFAULT_URL ");\n"
            "a password may also come from $REDISCLI_AUTH"},
    {O_VERBOSE, NULL},
    {O_HELP, "this help; 'redis-lock COMMAND --help' for a command's"},
    {O_VERSION, NULL},
    {O_NONE, NULL}};

static const struct cli_command_option RUN_OPTIONS[] = {
    {O_WAIT, NULL},
    {O_NOWAIT, NULL},
    {O_EXPIRE, "the lock's expiry, renewed while CMD runs (default 30;\n"
               "0: never expires, not renewed)"},
    {O_NORENEW, NULL},
    {O_GRACE, NULL},
    {O_FENCING, NULL},
    {O_ID, NULL},
    {O_EXITCODE, NULL},
    {O_QUIET, NULL},
    {O_FAIR, NULL},
    {O_SHARED, NULL},
    {O_LIMIT, NULL},
    {O_NONE, NULL}};
static const struct cli_command_option ACQUIRE_OPTIONS[] = {
    {O_WAIT, NULL},
    {O_NOWAIT, NULL},
    {O_EXPIRE, "the lock expires after SEC seconds unless extended\n"
               "(default 0: never; a crashed script then needs 'reset')"},
    {O_ID, NULL},
    {O_EXITCODE, NULL},
    {O_QUIET, NULL},
    {O_FAIR, NULL},
    {O_SHARED, NULL},
    {O_LIMIT, NULL},
    {O_NONE, NULL}};
static const struct cli_command_option RELEASE_OPTIONS[] = {
    {O_ID, "the id 'redis-lock acquire' printed"},
    {O_FAIR, "a fair lock's: hand it to the first waiter"},
    {O_SHARED, "a shared hold's"},
    {O_LIMIT, "a semaphore's permit"},
    {O_NONE, NULL}};
static const struct cli_command_option EXTEND_OPTIONS[] = {
    {O_ID, "the id 'redis-lock acquire' printed"},
    {O_EXPIRE, "the new expiry (more than 0)"},
    {O_FAIR, "a fair lock's (the same as without)"},
    {O_SHARED, "a shared hold's"},
    {O_LIMIT, "a semaphore's permit"},
    {O_NONE, NULL}};
static const struct cli_command_option STATUS_OPTIONS[] = {
    {O_JSON, "print {\"name\":...,\"held\":...,\"owner\":...,\"ttl_ms\":...}\n"
             "(owner null when free; ttl_ms null when free or no expiry);\n"
             "with -s or --limit also \"holders\":[{\"id\":...,\"ttl_ms\":...}]"},
    {O_FAIR, "a fair lock (the same as without)"},
    {O_SHARED, "list the shared holders"},
    {O_LIMIT, "the semaphore NAME: list its holders"},
    {O_NONE, NULL}};
static const struct cli_command_option NO_OPTIONS[] = {{O_NONE, NULL}};
static const struct cli_command_option RESET_ALL_OPTIONS[] = {{O_YES, NULL}, {O_NONE, NULL}};
static const struct cli_command_option CACHE_OPTIONS[] = {
    {O_TTL, NULL},
    {O_WAIT, "wait at most SEC for another caller's computation\n(default: forever)"},
    {O_NOWAIT, NULL},
    {O_EXPIRE, "the computing lock's expiry, renewed (default 30)"},
    {O_REFRESH, NULL},
    {O_EXITCODE, "exit status when the wait timed out (default 1)"},
    {O_QUIET, "say nothing when the wait timed out"},
    {O_NONE, NULL}};

const cli_command_spec cli_commands[CMD_COUNT] = {
    [CMD_RUN] = {"run",
                 "[-w SEC | -n] [-x SEC] [--no-renew] [--grace SEC] [--fencing]\n"
                 "[-i ID] [-E CODE] [-q] [--fair | -s | --limit N] NAME -- CMD [ARG...]",
                 "run CMD while holding lock NAME",
                 "Acquire lock NAME, run CMD, release the lock when CMD exits. CMD finds\n"
                 "REDIS_LOCK_NAME, REDIS_LOCK_ID (and with --fencing REDIS_LOCK_TOKEN) in its\n"
                 "environment. SIGINT, SIGTERM and SIGHUP are passed on to CMD. If the lock is lost\n"
                 "while CMD runs, CMD gets SIGTERM (SIGKILL after the grace period) and redis-lock\n"
                 "exits 75. If redis-lock is killed, CMD gets SIGTERM at once.\n"
                 "--fair: waiters get NAME in arrival order. -s: hold NAME shared (many at once;\n"
                 "none while a plain holder holds or waits). --limit N: take one of N permits of\n"
                 "the semaphore NAME (REDIS_LOCK_ID is the permit's id).\n",
                 "Exit status: CMD's own (128+N if it died of signal N); 126/127 CMD cannot run / not\n"
                 "found; CODE when busy; 128+N when signal N ended the wait; 64 69 70 75 77 (see --help).\n",
                 "NAME", true, 30000, RUN_OPTIONS},
    [CMD_ACQUIRE] = {"acquire",
                     "[-w SEC | -n] [-x SEC] [-i ID] [-E CODE] [-q] [--fair | -s | --limit N]\n"
                     "NAME",
                     "take lock NAME, print its id, keep it",
                     "Acquire lock NAME, print its id on stdout and exit, leaving the lock held; give it\n"
                     "back with 'redis-lock release -i ID NAME' (with the same --fair, -s or --limit N).\n"
                     "Nothing renews it.\n",
                     NULL, "NAME", false, 0, ACQUIRE_OPTIONS},
    [CMD_RELEASE] = {"release", "-i ID [--fair | -s | --limit N] NAME",
                     "release lock NAME held by ID",
                     "Release lock NAME if ID holds it, and wake one waiter. Exit 1 when ID does not\n"
                     "hold it (it expired, was reset, or another owner has it).\n",
                     NULL, "NAME", false, 0, RELEASE_OPTIONS},
    [CMD_EXTEND] = {"extend", "-i ID -x SEC [--fair | -s | --limit N] NAME",
                    "set the expiry of lock NAME held by ID",
                    "Set the expiry of lock NAME, held by ID, to SEC seconds from now. Exit 1 when ID\n"
                    "does not hold it, or it was acquired without an expiry.\n",
                    NULL, "NAME", false, 0, EXTEND_OPTIONS},
    [CMD_STATUS] = {"status", "[--json] [--fair | -s | --limit N] NAME",
                    "owner and expiry; exit 0 held, 1 free",
                    "Print one line: 'held by ID, expires in N ms', 'held by ID, no expiry' or 'free'.\n"
                    "With -s or --limit N: 'held by N holders' (or 'held by ID' for an exclusive\n"
                    "holder of a shared lock) and one line per holder, '  ID, expires in N ms' or\n"
                    "'  ID, no expiry'. Exit 0 when held, 1 when free.\n",
                    NULL, "NAME", false, 0, STATUS_OPTIONS},
    [CMD_RESET] = {"reset", "NAME", "delete lock NAME whoever holds it",
                   "Delete lock NAME whoever holds it, and wake one waiter. A 'run' holding it\n"
                   "notices at its next renewal, stops its command and exits 75.\n",
                   NULL, "NAME", false, 0, NO_OPTIONS},
    [CMD_RESET_ALL] = {"reset-all", "[--yes]", "delete every lock; prints how many",
                       "Delete every lock (every lock:* key) in the database and print how many.\n",
                       NULL, NULL, false, 0, RESET_ALL_OPTIONS},
    [CMD_CACHE] = {"cache",
                   "-t TTL_SEC [-w SEC] [-x SEC] [--refresh] [-E CODE] [-q]\n"
                   "KEY -- CMD [ARG...]",
                   "print CMD's cached stdout, or compute it once",
                   "Print the value cached under the Redis key KEY. On a miss run CMD once, under the\n"
                   "lock 'get_or_set:KEY', however many callers miss at the same time; its stdout\n"
                   "(any bytes, any size) is stored for TTL_SEC seconds and printed. A CMD that fails\n"
                   "is not cached: its stderr passes through and its exit status is redis-lock's.\n",
                   NULL, "KEY", true, 0, CACHE_OPTIONS},
};

static const char GENERAL_EPILOGUE[] =
    "Exit status: CMD's own; 128+N for signal N; 126/127 CMD cannot run / not found;\n"
    "-E CODE (default 1) lock busy or wait timed out; 64 usage; 69 Redis unreachable;\n"
    "70 internal error; 74 output write error; 75 lock lost while CMD ran;\n"
    "77 authentication or permission refused. See redis-lock(1).\n";

bool cli_parse_seconds(const char *s, int64_t *out_ms)
{
    const char *p = s;
    int64_t whole = 0, frac = 0;
    int nfrac = 0;
    bool digits = false, more = false;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (*p - '0');
        digits = true;
        if (whole > CLI_MAX_SECONDS)
            return false;
    }
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++) {
            digits = true;
            if (nfrac < 3) {
                frac = frac * 10 + (*p - '0');
                nfrac++;
            } else if (*p != '0') {
                more = true;
            }
        }
    if (!digits || *p)
        return false;
    for (; nfrac < 3; nfrac++)
        frac *= 10;
    *out_ms = whole * 1000 + frac + (more ? 1 : 0);
    return true;
}

/* ---- parsing ---- */

/* What a list (own, then the common ones) says about option id: NULL when absent. */
static const struct cli_command_option *find_in(const struct cli_command_option *list,
                                                option_id id)
{
    for (; list && list->id != O_NONE; list++)
        if (list->id == id)
            return list;
    return NULL;
}

static bool allowed(const cli_command_spec *spec, option_id id)
{
    return spec ? find_in(spec->options, id) || find_in(COMMON, id) : find_in(GLOBAL, id) != NULL;
}

enum { SAW_HELP = -1, SAW_VERSION = -2 };

static int apply(const cli_command_spec *spec, cli_args *a, option_id id, const char *shown,
                 const char *val)
{
    const char *sub = spec ? spec->name : NULL;
    const cli_option *o = &OPTIONS[id];
    char *field = (char *)a + o->field;
    switch (o->kind) {
    case K_HELP:
        return SAW_HELP;
    case K_VERSION:
        return SAW_VERSION;
    case K_FLAG:
        *(bool *)field = true;
        return 0;
    case K_STRING:
        *(const char **)field = val;
        return 0;
    case K_LIMIT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (!*val || *end || errno || v < 1 || v > CLI_MAX_LIMIT || *val < '0' || *val > '9')
            return cli_usage_error(sub, "%s needs a number of holders 1..%d, got '%s'", shown,
                                   CLI_MAX_LIMIT, val);
        *(int *)field = (int)v;
        return 0;
    }
    case K_ID:
        if (!*val)
            return cli_usage_error(sub, "%s needs a non-empty id", shown);
        /* lock:NAME holding this text means "held shared" (docs/design.md 7.2) */
        if (strcmp(val, "(shared)") == 0)
            return cli_usage_error(sub, "%s must not be '(shared)', the shared holders' marker",
                                   shown);
        *(const char **)field = val;
        return 0;
    case K_SECONDS: {
        int64_t ms;
        if (!cli_parse_seconds(val, &ms))
            return cli_usage_error(sub, "%s needs a number of seconds (like 5 or 0.5), got '%s'",
                                   shown, val);
        *(int64_t *)field = ms;
        if (o->set_field)
            *(bool *)((char *)a + o->set_field) = true;
        return 0;
    }
    case K_EXIT_STATUS: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (!*val || *end || errno || v < 0 || v > 255 || (*val < '0' || *val > '9'))
            return cli_usage_error(sub, "%s needs an exit status 0..255, got '%s'", shown, val);
        *(int *)field = (int)v;
        return 0;
    }
    }
    return 0;
}

/* One option argument at argv[*i] ("--long[=value]", "--long value", "-abc", "-w5",
 * "-w 5"); *i moves past what it used. 0, SAW_HELP, SAW_VERSION, or EX_USAGE (reported). */
static int parse_option(const cli_command_spec *spec, cli_args *a, int argc, char **argv, int *i)
{
    const char *sub = spec ? spec->name : NULL;
    const char *s = argv[*i];
    if (s[1] == '-') {
        const char *nm = s + 2, *eq = strchr(nm, '=');
        size_t len = eq ? (size_t)(eq - nm) : strlen(nm);
        option_id id = O_NONE;
        for (int k = 1; k < O_COUNT; k++)
            if (strlen(OPTIONS[k].long_name) == len && strncmp(OPTIONS[k].long_name, nm, len) == 0)
                id = (option_id)k;
        if (id == O_NONE || !allowed(spec, id))
            return cli_usage_error(sub, "unknown option '%.*s'", (int)(len + 2), s);
        const cli_option *o = &OPTIONS[id];
        const char *val = NULL;
        if (o->arg) {
            if (eq)
                val = eq + 1;
            else if (*i + 1 < argc)
                val = argv[++*i];
            else
                return cli_usage_error(sub, "option '--%s' needs a value", o->long_name);
        } else if (eq) {
            return cli_usage_error(sub, "option '--%s' takes no value", o->long_name);
        }
        char shown[48];
        snprintf(shown, sizeof shown, "--%s", o->long_name);
        return apply(spec, a, id, shown, val);
    }
    for (const char *p = s + 1; *p; p++) {
        option_id id = O_NONE;
        for (int k = 1; k < O_COUNT; k++)
            if (OPTIONS[k].short_name == *p)
                id = (option_id)k;
        if (id == O_NONE || !allowed(spec, id))
            return cli_usage_error(sub, "unknown option '-%c'", *p);
        char shown[3] = {'-', *p, 0};
        const char *val = NULL;
        if (OPTIONS[id].arg) {
            if (p[1])
                val = p + 1;
            else if (*i + 1 < argc)
                val = argv[++*i];
            else
                return cli_usage_error(sub, "option '-%c' needs a value", *p);
        }
        int rc = apply(spec, a, id, shown, val);
        if (rc || val)
            return rc;
    }
    return 0;
}

/* The command's options and arguments, argv[1..] (argv[0] is its name). Options may come
 * before or after NAME; "--" ends them; with wants_cmd everything after "--" is CMD. */
static int parse_command(const cli_command_spec *spec, cli_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--") == 0) {
            a->dashdash = true;
            if (spec->wants_cmd) {
                a->cmd = argv + i + 1;
                a->ncmd = argc - i - 1;
                break;
            }
            for (i++; i < argc; i++) {
                if (a->name || !spec->arg_name)
                    return cli_usage_error(spec->name, "unexpected argument '%s'", argv[i]);
                a->name = argv[i];
            }
            break;
        }
        if (s[0] != '-' || s[1] == '\0') {
            if (a->name || !spec->arg_name)
                return spec->wants_cmd
                           ? cli_usage_error(spec->name, "unexpected argument '%s' (the command "
                                             "goes after '--': NAME -- CMD [ARG...])", s)
                           : cli_usage_error(spec->name, "unexpected argument '%s'", s);
            a->name = s;
            continue;
        }
        int rc = parse_option(spec, a, argc, argv, &i);
        if (rc == SAW_HELP) {
            a->what = CLI_HELP;
            return 0;
        }
        if (rc)
            return rc;
    }
    if (a->nowait && a->wait_set)
        return cli_usage_error(spec->name, "-n and -w cannot be used together (-n is -w 0)");
    if ((a->fair ? 1 : 0) + (a->shared ? 1 : 0) + (a->limit ? 1 : 0) > 1)
        return cli_usage_error(spec->name, "--fair, -s and --limit cannot be used together");
    if (a->nowait) {
        a->wait_ms = 0;
        a->wait_set = true;
    }
    if (!spec->arg_name)
        return 0;
    bool key = strcmp(spec->arg_name, "KEY") == 0;
    if (!a->name)
        return cli_usage_error(spec->name, "missing %s", spec->arg_name);
    if (!*a->name)
        return cli_usage_error(spec->name, "the %s must not be empty", key ? "key" : "lock name");
    if (spec->wants_cmd && !a->dashdash)
        return cli_usage_error(spec->name, "missing '--' and the command (NAME -- CMD [ARG...])");
    if (spec->wants_cmd && a->ncmd == 0)
        return cli_usage_error(spec->name, "missing the command after '--'");
    return 0;
}

int cli_parse(int argc, char **argv, cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->what = CLI_HELP;
    a->wait_ms = -1;
    a->grace_ms = 5000;
    a->conflict = 1;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        int rc = parse_option(NULL, a, argc, argv, &i);
        if (rc == SAW_HELP)
            return 0;
        if (rc == SAW_VERSION) {
            a->what = CLI_VERSION;
            return 0;
        }
        if (rc)
            return rc;
    }
    if (i >= argc) {
        char names[128] = "";
        for (int k = 0; k < CMD_COUNT; k++) {
            if (k)
                strcat(names, ", ");
            strcat(names, cli_commands[k].name);
        }
        return cli_usage_error(NULL, "missing command (%s)", names);
    }
    if (strcmp(argv[i], "help") == 0)
        return 0;
    for (int k = 0; k < CMD_COUNT; k++)
        if (strcmp(cli_commands[k].name, argv[i]) == 0) {
            a->command = (cli_command)k;
            a->spec = &cli_commands[k];
        }
    if (!a->spec)
        return cli_usage_error(NULL, "unknown command '%s'", argv[i]);
    a->expire_ms = a->spec->default_expire_ms;
    a->what = CLI_RUN_COMMAND;
    return parse_command(a->spec, a, argc - i, argv + i);
}

/* ---- help texts ---- */

#define HELP_COLUMN 24  /* where an option's help starts */
#define SUMMARY_COLUMN 36 /* where a command's summary starts in the general help */
#define HELP_WIDTH 92

/* s's lines, the first after what is on the line already, the others indented. */
static void add_lines(strbuf *b, const char *s, int indent)
{
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, "\n");
        if (p != s)
            sb_addf(b, "%*s", indent, "");
        sb_add(b, p, n);
        sb_add(b, "\n", 1);
        p += n + (p[n] == '\n');
    }
}

static void add_options(strbuf *b, const struct cli_command_option *list)
{
    for (; list->id != O_NONE; list++) {
        const cli_option *o = &OPTIONS[list->id];
        size_t start = b->len;
        if (o->short_name)
            sb_addf(b, "  -%c, --%s", o->short_name, o->long_name);
        else
            sb_addf(b, "      --%s", o->long_name);
        if (o->arg)
            sb_addf(b, " %s", o->arg);
        size_t used = b->len - start;
        sb_addf(b, "%*s", used + 2 <= HELP_COLUMN ? (int)(HELP_COLUMN - used) : 2, "");
        add_lines(b, list->help ? list->help : o->help, HELP_COLUMN);
    }
}

char *cli_help_text(const cli_command_spec *spec)
{
    strbuf b = {0};
    if (!spec) {
        sb_adds(&b, "usage: redis-lock [-u URL] [-v] COMMAND [OPTIONS] ...\n\n"
                    "Distributed locks over Redis, compatible with python-redis-lock.\n\n");
        for (int k = 0; k < CMD_COUNT; k++) {
            const cli_command_spec *c = &cli_commands[k];
            size_t line = b.len;
            sb_addf(&b, "  %-9s ", c->name);
            for (const char *p = c->synopsis; *p;) {
                size_t n = strcspn(p, "\n");
                if (p != c->synopsis) {
                    sb_add(&b, "\n", 1);
                    line = b.len;
                    sb_addf(&b, "%12s", "");
                }
                sb_add(&b, p, n);
                p += n + (p[n] == '\n');
            }
            size_t used = b.len - line, want = strlen(c->summary);
            if (used + 3 + want <= HELP_WIDTH)
                sb_addf(&b, "%*s%s\n", used + 3 <= SUMMARY_COLUMN ? (int)(SUMMARY_COLUMN - used) : 3,
                        "", c->summary);
            else
                sb_addf(&b, "\n%*s%s\n", SUMMARY_COLUMN, "", c->summary);
        }
        sb_add(&b, "\n", 1);
        add_options(&b, GLOBAL);
        sb_add(&b, "\n", 1);
        sb_adds(&b, GENERAL_EPILOGUE);
    } else {
        int indent = (int)strlen("usage: redis-lock ") + (int)strlen(spec->name) + 1;
        sb_addf(&b, "usage: redis-lock %s ", spec->name);
        add_lines(&b, spec->synopsis, indent);
        sb_add(&b, "\n", 1);
        sb_adds(&b, spec->description);
        sb_add(&b, "\n", 1);
        add_options(&b, spec->options);
        add_options(&b, COMMON);
        if (spec->epilogue) {
            sb_add(&b, "\n", 1);
            sb_adds(&b, spec->epilogue);
        }
    }
    if (b.oom) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
