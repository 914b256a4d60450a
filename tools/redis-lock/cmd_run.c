/* redis-lock run: hold a lock while a command runs (flock(1) across machines). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

extern char **environ;

/* environ minus REDIS_LOCK_*, plus REDIS_LOCK_NAME, _ID and (fencing) _TOKEN. */
static char **command_env(redis_lock *l, bool fencing, char **own, size_t nown)
{
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    char **env = calloc(n + 4, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "REDIS_LOCK_NAME=", 16) && strncmp(*e, "REDIS_LOCK_ID=", 14) &&
            strncmp(*e, "REDIS_LOCK_TOKEN=", 17))
            env[k++] = *e;
    const char *name = redis_lock_name(l), *id = redis_lock_id(l);
    size_t ln = strlen(name) + 17, li = strlen(id) + 15;
    own[0] = malloc(ln);
    own[1] = malloc(li);
    own[2] = fencing ? malloc(48) : NULL;
    if (!own[0] || !own[1] || (fencing && !own[2])) {
        for (size_t i = 0; i < nown; i++) {
            free(own[i]);
            own[i] = NULL;
        }
        free(env);
        return NULL;
    }
    snprintf(own[0], ln, "REDIS_LOCK_NAME=%s", name);
    snprintf(own[1], li, "REDIS_LOCK_ID=%s", id);
    env[k++] = own[0];
    env[k++] = own[1];
    if (fencing) {
        snprintf(own[2], 48, "REDIS_LOCK_TOKEN=%lld", (long long)redis_lock_fencing_token(l));
        env[k++] = own[2];
    }
    env[k] = NULL;
    return env;
}

int cmd_run(cli_args *a)
{
    bool renew = !a->no_renew && a->expire_ms > 0;
    int code = cli_signals_setup();
    if (code)
        return code;
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    char **env = NULL, *own[3] = {NULL, NULL, NULL};
    if ((code = cli_open_client(&c, a, 0)))
        return code;
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.expire_ms = a->expire_ms;
    lo.auto_renewal = renew;
    lo.id = a->id;
    lo.fencing = a->fencing;
    lo.on_lost = renew ? cli_on_lost : NULL;
    if ((code = cli_new_hold(&l, c, a, &lo)))
        goto out;
    if ((code = cli_take_lock(l, a, renew)))
        goto out;
    int sig = cli_signal();
    if (sig) {
        redis_lock_release(l);
        code = 128 + sig;
        goto out;
    }
    env = command_env(l, a->fencing, own, 3);
    if (!env) {
        redis_lock_release(l);
        cli_err("out of memory");
        code = EX_SOFTWARE;
        goto out;
    }
    int status;
    bool lost = false;
    cli_set_phase(PHASE_CHILD);
    pid_t pid = cli_spawn(a->cmd, env, -1, &status);
    if (pid > 0) {
        cli_vlog("running %s (pid %d) under lock %s", a->cmd[0], (int)pid, a->name);
        status = cli_supervise(pid, -1, NULL, renew, a->grace_ms, a->name, &lost);
        cli_vlog("the command exited with status %d", status);
    }
    cli_set_phase(PHASE_IDLE);
    if (lost) {
        code = EX_TEMPFAIL;
        goto out;
    }
    int rc = redis_lock_release(l);
    if (rc == REDIS_LOCK_ENOTHELD) {
        cli_err("lock '%s' expired or was reset while the command ran (it exited with status "
                "%d)", a->name, status);
        code = EX_TEMPFAIL;
    } else if (rc) {
        int e = cli_report(rc, "releasing lock '%s'", a->name);
        code = status ? status : e; /* the command's own failure says more */
    } else {
        code = status;
    }
out:
    cli_set_phase(PHASE_IDLE);
    cli_set_wait_lock(NULL);
    redis_lock_free(l);
    redis_lock_client_close(c);
    free(env);
    for (int i = 0; i < 3; i++)
        free(own[i]);
    return code;
}
