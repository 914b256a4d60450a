/* redis-lock, the command-line tool: what its files share. The tool is a user of the
 * public API (<redis_lock.h>) only.
 *
 *   main.c       entry: parse, then run the command's handler
 *   options.c    the command line: one table of options and one of commands, which
 *                also make the help texts; parses, runs nothing, connects nowhere
 *   output.c     messages on stderr, -v logging, exit statuses, output helpers
 *   connect.c    the Redis URL and password, opening the client
 *   child.c      signals, starting a command and supervising it
 *   cmd_run.c    run
 *   cmd_lock.c   acquire, release, extend, status, reset, reset-all
 *   cmd_cache.c  cache
 *
 * The contract (exit statuses, signals) is docs/cli.md, docs/redis-lock.1 and
 * docs/design.md. */
#ifndef REDIS_LOCK_CLI_H
#define REDIS_LOCK_CLI_H

#include <redis_lock.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define CLI_DEFAULT_URL "redis://127.0.0.1:6379/0"
#define CLI_MAX_LIMIT 1000000 /* --limit N: as the library's semaphore allows */
#define CLI_MAX_SECONDS 1000000000LL /* ~31 years: keeps every ms value far from overflow */
/* The library's command timeout bounds a whole reply, so a big cached value needs more
 * than the 2 s default (64 MiB is several seconds on a slow link or a loaded machine). */
#define CLI_CACHE_COMMAND_TIMEOUT_MS 60000

/* ---- options.c: the command line ---- */

/* The commands; main.c maps each to its handler. */
typedef enum {
    CMD_RUN,
    CMD_ACQUIRE,
    CMD_RELEASE,
    CMD_EXTEND,
    CMD_STATUS,
    CMD_RESET,
    CMD_RESET_ALL,
    CMD_CACHE,
    CMD_COUNT
} cli_command;

/* What a command takes besides options; its help text is made from this and its options. */
typedef struct {
    const char *name;
    const char *synopsis;    /* after "redis-lock NAME " */
    const char *summary;     /* one line, for the general help */
    const char *description; /* paragraphs, for 'redis-lock NAME --help' */
    const char *epilogue;    /* after the options (may be NULL) */
    const char *arg_name;    /* "NAME", "KEY", or NULL: takes no argument */
    bool wants_cmd;          /* ARG -- CMD [ARG...] */
    int64_t default_expire_ms;
    const struct cli_command_option *options; /* ends with {0} */
} cli_command_spec;

extern const cli_command_spec cli_commands[CMD_COUNT];

typedef enum { CLI_RUN_COMMAND, CLI_HELP, CLI_VERSION } cli_what;

typedef struct {
    cli_what what;
    const cli_command_spec *spec; /* CLI_RUN_COMMAND, or CLI_HELP of a command; NULL: the
                                     general help */
    cli_command command;
    const char *url;
    bool verbose;
    const char *name; /* NAME or KEY */
    char **cmd;       /* after "--", NULL-terminated */
    int ncmd;
    bool dashdash;
    int64_t wait_ms; /* -1: forever */
    bool wait_set, nowait;
    int64_t expire_ms;
    bool expire_set;
    int64_t grace_ms;
    int64_t ttl_ms;
    bool ttl_set;
    const char *id;
    int conflict; /* -E */
    bool no_renew, fencing, json, yes, refresh, quiet;
    /* the kind of hold (at most one): a fair lock, a shared hold, a permit of a
     * semaphore of `limit` holders (0: not a semaphore) */
    bool fair, shared;
    int limit;
} cli_args;

/* The whole command line (argv[0] is the program): global options, the command, its
 * options and arguments. Returns 0 with *a filled, or EX_USAGE (reported on stderr). */
int cli_parse(int argc, char **argv, cli_args *a);
/* Seconds as a decimal ("5", "0.25", ".5") into ms, rounded up. No sign, no exponent. */
bool cli_parse_seconds(const char *s, int64_t *out_ms);
/* The help text of spec (NULL: the general help), malloc'd; NULL when out of memory. */
char *cli_help_text(const cli_command_spec *spec);

/* ---- output.c ---- */

extern bool cli_verbose; /* -v */

/* One line on stderr, "redis-lock: ...", written with one write(). */
void cli_err(const char *fmt, ...) CLI_PRINTF(1, 2);
/* A usage error of command sub (NULL: before the command): one line with a hint. */
int cli_usage_error(const char *sub, const char *fmt, ...) CLI_PRINTF(2, 3);
/* The library's log callback, also used for our own -v steps: timestamped, one line. */
void cli_log_line(int level, const char *message, void *payload);
void cli_vlog(const char *fmt, ...) CLI_PRINTF(1, 2);
/* The exit status for a library failure. */
int cli_exit_status_for(int rc);
/* Report a library failure as one line (with the library's detail); its exit status. */
int cli_report(int rc, const char *fmt, ...) CLI_PRINTF(2, 3);
/* Write everything to fd; false (errno set) on failure. */
bool cli_write_all(int fd, const char *p, size_t n);
/* Write to stdout: 0, or EX_IOERR (reported). */
int cli_write_stdout(const char *p, size_t n);
/* "0.3", "5", "0.25": milliseconds as seconds, for messages. */
const char *cli_fmt_secs(char *buf, size_t n, int64_t ms);
int64_t cli_now_ms(void);

/* A growable byte string; {0} is empty. On out of memory oom is set and adds stop. */
typedef struct {
    char *data;
    size_t len, cap;
    bool oom;
} strbuf;
bool sb_reserve(strbuf *b, size_t more);
void sb_add(strbuf *b, const char *p, size_t n);
void sb_adds(strbuf *b, const char *s);
void sb_addf(strbuf *b, const char *fmt, ...) CLI_PRINTF(2, 3);
/* A JSON string: quotes, escapes; bytes that are not UTF-8 become U+FFFD. */
void sb_json_string(strbuf *b, const char *s);
/* Text for a terminal: control bytes shown as \xNN so the output stays one line. */
void sb_text(strbuf *b, const char *s);

/* ---- connect.c ---- */

/* url with the %-encoded password spliced in when it has none:
 *   redis[s]://[user]:PASS@host..., unix://[user]:PASS@/path
 * NULL when url keeps its own password or is not one of those forms (or out of memory). */
char *cli_splice_password(const char *url, const char *pw);
/* Open the client for a->url ($REDIS_URL, the default; password from $REDISCLI_AUTH);
 * command_timeout_ms 0: the library's default. 0, or the exit status (reported). */
int cli_open_client(redis_lock_client **out, const cli_args *a, int command_timeout_ms);
/* redis_lock_new: 0, or the exit status (reported). */
int cli_new_lock(redis_lock **out, redis_lock_client *c, const char *name,
                 const redis_lock_options *lo);
/* The handle for the kind of hold a asks for (--fair, -s, --limit N: lo's fair and shared
 * are set here): 0, or the exit status (reported). */
int cli_new_hold(redis_lock **out, redis_lock_client *c, const cli_args *a,
                 redis_lock_options *lo);

/* ---- child.c: signals and the command ---- */

/* What a SIGINT/SIGTERM/SIGHUP does now. */
typedef enum {
    PHASE_IDLE,  /* recorded; the code checks cli_signal() at its next step */
    PHASE_WAIT,  /* waiting for a lock: the signal cancels the wait (cli_set_wait_lock) */
    PHASE_CHILD, /* the command runs: passed on to it */
    PHASE_CACHE, /* inside the cache call, outside the command: cancels the call
                    (cli_set_cache_token) */
} cli_phase;

/* Save the signal state we started with (the command gets it back). First thing in main. */
void cli_signals_save(void);
/* Install our handlers and the self-pipe. 0, or an exit status (reported). */
int cli_signals_setup(void);
void cli_set_phase(cli_phase phase);
void cli_set_wait_lock(redis_lock *lock);
void cli_set_cache_token(redis_lock_cancel_token *token);
/* The last SIGINT/SIGTERM/SIGHUP received (0: none); clear forgets it. */
int cli_signal(void);
void cli_signal_clear(void);
/* The on_lost callback for a renewed lock: the supervising loop stops the command. */
void cli_on_lost(redis_lock *lock, void *payload);
/* Start argv with envp (NULL: ours) and stdout on out_fd (-1: ours). Returns the pid,
 * or -1 with *status set (126 cannot run, 127 not found, or a sysexit), reported. */
pid_t cli_spawn(char **argv, char **envp, int out_fd, int *status);
/* Wait for the child, passing signals on. With out_fd, collect its stdout into out (and
 * close out_fd). With watch_lost, a lost lock stops the child: SIGTERM, then SIGKILL after
 * grace_ms; *lost tells. Returns the child's exit status (128+N for signal N). */
int cli_supervise(pid_t pid, int out_fd, strbuf *out, bool watch_lost, int64_t grace_ms,
                  const char *name, bool *lost);

/* ---- the commands: each returns the exit status ---- */

int cmd_run(cli_args *a);
int cmd_acquire(cli_args *a);
int cmd_release(cli_args *a);
int cmd_extend(cli_args *a);
int cmd_status(cli_args *a);
int cmd_reset(cli_args *a);
int cmd_reset_all(cli_args *a);
int cmd_cache(cli_args *a);
/* cmd_lock.c: take the lock for run/acquire within a->wait_ms. 0 when held, else the exit
 * status (reported). */
int cli_take_lock(redis_lock *l, const cli_args *a, bool renew);

#endif
