/* redis-lock: the command-line tool, a thin user of the public API (<redis_lock.h>).
 *
 *   run                        hold a lock while a command runs (flock(1) across machines)
 *   acquire, release, extend   a lock that spans several steps of a shell script
 *   status, reset, reset-all   look at and clear locks
 *   cache                      print a command's cached stdout, or compute it once
 *
 * The manual is docs/redis-lock.1; cli.h says which file does what. */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

static int (*const HANDLERS[CMD_COUNT])(cli_args *a) = {
    [CMD_RUN] = cmd_run,         [CMD_ACQUIRE] = cmd_acquire, [CMD_RELEASE] = cmd_release,
    [CMD_EXTEND] = cmd_extend,   [CMD_STATUS] = cmd_status,   [CMD_RESET] = cmd_reset,
    [CMD_RESET_ALL] = cmd_reset_all, [CMD_CACHE] = cmd_cache,
};

int main(int argc, char **argv)
{
    cli_signals_save();
    /* A closed stdout is reported as a write error (74), not a silent death. */
    signal(SIGPIPE, SIG_IGN);

    cli_args a;
    int rc = cli_parse(argc, argv, &a);
    cli_verbose = a.verbose;
    if (rc)
        return rc;
    if (a.what == CLI_VERSION) {
        char v[96];
        int n = snprintf(v, sizeof v, "redis-lock %d.%d.%d (libredislock %s)\n",
                         REDIS_LOCK_VERSION_MAJOR, REDIS_LOCK_VERSION_MINOR,
                         REDIS_LOCK_VERSION_PATCH, redis_lock_version());
        return cli_write_stdout(v, (size_t)n);
    }
    if (a.what == CLI_HELP) {
        char *text = cli_help_text(a.spec);
        if (!text) {
            cli_err("out of memory");
            return EX_SOFTWARE;
        }
        rc = cli_write_stdout(text, strlen(text));
        free(text);
        return rc;
    }
    return HANDLERS[a.command](&a);
}
