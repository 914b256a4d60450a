/* redis-lock cache: print a command's cached stdout, or compute it once under the lock
 * "get_or_set:KEY". A signal while the command runs is the command's (passed on); any
 * other time inside the cache call it cancels the call through a cancel token, so the
 * library gives the lock back before we exit 128+N. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

typedef struct {
    char **argv;
    bool ran;   /* make was called */
    int status; /* the command's exit status, or ours */
} cache_job;

/* The cache's make callback: run the command, its stdout is the value. */
static int cache_make(void *payload, char **value, size_t *len)
{
    cache_job *job = payload;
    job->ran = true;
    int p[2];
    if (pipe2(p, O_CLOEXEC)) {
        cli_err("cannot create a pipe: %s", strerror(errno));
        job->status = EX_SOFTWARE;
        return 1;
    }
    fcntl(p[0], F_SETPIPE_SZ, 1 << 20); /* fewer wake-ups for big outputs; best effort */
    cli_set_phase(PHASE_CHILD);
    pid_t pid = cli_spawn(job->argv, NULL, p[1], &job->status);
    close(p[1]);
    strbuf out = {0};
    if (pid < 0) {
        close(p[0]);
    } else {
        cli_vlog("cache miss: running %s (pid %d)", job->argv[0], (int)pid);
        job->status = cli_supervise(pid, p[0], &out, false, 0, NULL, NULL);
        cli_vlog("the command exited with status %d after writing %zu bytes", job->status,
                 out.len);
    }
    cli_signal_clear(); /* those were the command's to act on */
    cli_set_phase(PHASE_CACHE);
    if (pid < 0)
        return 1;
    if (out.oom) {
        cli_err("out of memory holding the command's output (%zu bytes)", out.len);
        job->status = EX_SOFTWARE;
    }
    if (job->status) {
        free(out.data);
        return 1;
    }
    *value = out.data;
    *len = out.len;
    return 0;
}

int cmd_cache(cli_args *a)
{
    const char *sub = a->spec->name;
    if (!a->ttl_set)
        return cli_usage_error(sub, "needs -t TTL_SEC (how long the output is cached)");
    if (a->ttl_ms == 0)
        return cli_usage_error(sub, "-t must be more than 0");
    int code = cli_signals_setup();
    if (code)
        return code;
    redis_lock_client *c = NULL;
    if ((code = cli_open_client(&c, a, CLI_CACHE_COMMAND_TIMEOUT_MS)))
        return code;
    redis_lock_cancel_token *token = NULL;
    int rc = redis_lock_cancel_token_new(&token);
    if (rc) {
        redis_lock_client_close(c);
        return cli_report(rc, "cache '%s'", a->name);
    }
    redis_lock_cache_options co;
    redis_lock_cache_options_init(&co);
    co.ttl_ms = a->ttl_ms;
    co.timeout_ms = a->wait_ms;
    co.refresh = a->refresh;
    if (a->expire_set) {
        co.lock.expire_ms = a->expire_ms;
        co.lock.auto_renewal = a->expire_ms > 0;
    }
    cache_job job = {a->cmd, false, 0};
    char *value = NULL;
    size_t len = 0;
    cli_set_cache_token(token);
    cli_set_phase(PHASE_CACHE);
    /* a signal before this point was recorded only: the token sees it now */
    if (cli_signal())
        redis_lock_cancel_token_cancel(token);
    rc = redis_lock_cache_get_or_set_cancelable(c, a->name, &co, cache_make, &job, token,
                                                &value, &len);
    cli_set_phase(PHASE_IDLE);
    cli_set_cache_token(NULL);
    int sig = cli_signal();
    char secs[32];
    if (rc == REDIS_LOCK_OK && sig) {
        code = 128 + sig; /* asked to stop after the value was stored */
    } else if (rc == REDIS_LOCK_OK) {
        cli_vlog("%s %zu bytes for %s", job.ran ? "computed" : "cached:", len, a->name);
        code = cli_write_stdout(value, len);
    } else if (rc == REDIS_LOCK_ECANCELED) {
        cli_vlog("cache call for %s canceled by signal %d", a->name, sig);
        code = 128 + (sig ? sig : SIGTERM);
    } else if (rc == REDIS_LOCK_EUSER && job.ran) {
        code = job.status ? job.status : EX_SOFTWARE;
    } else if (rc == REDIS_LOCK_BUSY) {
        if (!a->quiet)
            cli_err("timed out after %s s waiting for another process computing '%s'",
                    cli_fmt_secs(secs, sizeof secs, a->wait_ms), a->name);
        code = a->conflict;
    } else {
        code = cli_report(rc, "cache '%s'", a->name);
    }
    free(value);
    redis_lock_cancel_token_free(token);
    redis_lock_client_close(c);
    return code;
}
