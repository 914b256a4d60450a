/* A lock across the steps of a shell script (acquire, release, extend) and looking at and
 * clearing locks (status, reset, reset-all); cli_take_lock serves run too. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

/* Acquire within wait_ms (-1: forever). The library refuses a timeout longer than the
 * expiry without renewal (python-redis-lock parity); the tool never does: it waits in
 * steps no longer than the expiry until its own deadline. */
static int acquire_stepped(redis_lock *l, int64_t wait_ms, int64_t expire_ms, bool renew)
{
    if (wait_ms <= 0 || expire_ms == 0 || renew || wait_ms <= expire_ms)
        return redis_lock_acquire(l, wait_ms);
    int64_t deadline = cli_now_ms() + wait_ms;
    for (;;) {
        int64_t left = deadline - cli_now_ms();
        if (left < 0)
            left = 0;
        int64_t step = left < expire_ms ? left : expire_ms;
        int rc = redis_lock_acquire(l, step);
        if (rc != REDIS_LOCK_BUSY || step == left)
            return rc;
    }
}

int cli_take_lock(redis_lock *l, const cli_args *a, bool renew)
{
    char secs[32];
    cli_set_wait_lock(l);
    cli_set_phase(PHASE_WAIT);
    int rc = cli_signal() ? REDIS_LOCK_ECANCELED
                          : acquire_stepped(l, a->wait_ms, a->expire_ms, renew);
    cli_set_phase(PHASE_IDLE);
    int sig = cli_signal();
    if (rc == REDIS_LOCK_OK && sig) { /* the signal came as we won: give it back */
        redis_lock_release(l);
        return 128 + sig;
    }
    switch (rc) {
    case REDIS_LOCK_OK:
        return 0;
    case REDIS_LOCK_ECANCELED:
        cli_vlog("wait for %s canceled by signal %d", a->name, sig);
        return 128 + (sig ? sig : SIGTERM);
    case REDIS_LOCK_BUSY:
        if (!a->quiet && a->limit) {
            if (a->wait_ms == 0)
                cli_err("all %d permits of semaphore '%s' are held", a->limit, a->name);
            else
                cli_err("timed out after %s s waiting for a permit of semaphore '%s'",
                        cli_fmt_secs(secs, sizeof secs, a->wait_ms), a->name);
        } else if (!a->quiet) {
            if (a->wait_ms == 0)
                cli_err("lock '%s' is held by another owner", a->name);
            else
                cli_err("timed out after %s s waiting for lock '%s'",
                        cli_fmt_secs(secs, sizeof secs, a->wait_ms), a->name);
        }
        return a->conflict;
    case REDIS_LOCK_EALREADY:
        if (!a->quiet)
            cli_err("lock '%s' is already held by id %s", a->name, redis_lock_id(l));
        return a->conflict;
    case REDIS_LOCK_EINVAL:
        if (a->limit) { /* the holders' limit differs: a usage error naming both */
            cli_err("%s", redis_lock_last_error());
            return EX_USAGE;
        }
        return cli_report(rc, "acquiring lock '%s'", a->name);
    default:
        return cli_report(rc, "acquiring lock '%s'", a->name);
    }
}

int cmd_acquire(cli_args *a)
{
    int code = cli_signals_setup();
    if (code)
        return code;
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    if ((code = cli_open_client(&c, a, 0)))
        return code;
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.expire_ms = a->expire_ms;
    lo.id = a->id;
    if ((code = cli_new_hold(&l, c, a, &lo)))
        goto out;
    if ((code = cli_take_lock(l, a, false)))
        goto out;
    strbuf b = {0};
    sb_adds(&b, redis_lock_id(l));
    sb_add(&b, "\n", 1);
    if (b.oom || !cli_write_all(STDOUT_FILENO, b.data, b.len)) {
        int e = errno;
        redis_lock_release(l); /* nobody could release it without the id */
        cli_err("writing the id to standard output: %s (lock '%s' released)",
                b.oom ? "out of memory" : strerror(e), a->name);
        code = b.oom ? EX_SOFTWARE : EX_IOERR;
    }
    free(b.data);
out:
    cli_set_wait_lock(NULL);
    redis_lock_free(l);
    redis_lock_client_close(c);
    return code;
}

static int release_or_extend(cli_args *a, bool extend)
{
    const char *sub = a->spec->name;
    if (!a->id)
        return cli_usage_error(sub, "needs -i ID (the id that 'redis-lock acquire' printed)");
    if (extend && !a->expire_set)
        return cli_usage_error(sub, "needs -x SEC (the new expiry)");
    if (extend && a->expire_ms == 0)
        return cli_usage_error(sub, "-x must be more than 0 (a lock's expiry cannot be removed)");
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    int code = cli_open_client(&c, a, 0);
    if (code)
        return code;
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.id = a->id;
    lo.expire_ms = extend ? a->expire_ms : 0;
    if ((code = cli_new_hold(&l, c, a, &lo)))
        goto out;
    int rc = extend ? redis_lock_extend(l, a->expire_ms) : redis_lock_release(l);
    if (rc == REDIS_LOCK_ENOTHELD) {
        cli_err("lock '%s' is not held by %s (expired, reset, or never acquired)", a->name,
                a->id);
        code = 1;
    } else if (rc == REDIS_LOCK_ENOEXPIRE) {
        cli_err("lock '%s' has no expiry to extend (it was acquired with -x 0)", a->name);
        code = 1;
    } else if (rc) {
        code = cli_report(rc, "%s lock '%s'", extend ? "extending" : "releasing", a->name);
    }
out:
    redis_lock_free(l);
    redis_lock_client_close(c);
    return code;
}

int cmd_release(cli_args *a)
{
    return release_or_extend(a, false);
}

int cmd_extend(cli_args *a)
{
    return release_or_extend(a, true);
}

/* One holder per line for status -s / --limit. */
static void add_holders_text(strbuf *b, const redis_lock_holder *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sb_adds(b, "  ");
        sb_text(b, h[i].id);
        if (h[i].ttl_ms >= 0)
            sb_addf(b, ", expires in %lld ms\n", (long long)h[i].ttl_ms);
        else
            sb_adds(b, ", no expiry\n");
    }
}

static void add_holders_json(strbuf *b, const redis_lock_holder *h, size_t n)
{
    sb_adds(b, ",\"holders\":[");
    for (size_t i = 0; i < n; i++) {
        sb_adds(b, i ? ",{\"id\":" : "{\"id\":");
        sb_json_string(b, h[i].id);
        if (h[i].ttl_ms >= 0)
            sb_addf(b, ",\"ttl_ms\":%lld}", (long long)h[i].ttl_ms);
        else
            sb_adds(b, ",\"ttl_ms\":null}");
    }
    sb_adds(b, "]");
}

int cmd_status(cli_args *a)
{
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    char *owner = NULL;
    redis_lock_holder *holders = NULL;
    size_t nholders = 0;
    bool many = a->shared || a->limit; /* list every holder */
    strbuf b = {0};
    int code = cli_open_client(&c, a, 0);
    if (code)
        return code;
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    if ((code = cli_new_hold(&l, c, a, &lo)))
        goto out;
    int64_t ttl = -2;
    int rc = 0;
    if (many) {
        rc = redis_lock_holders(l, &holders, &nholders);
        if (!rc && !a->limit)
            rc = redis_lock_get_owner_id(l, &owner);
        if (!rc && owner)
            rc = redis_lock_ttl(l, &ttl);
    } else {
        rc = redis_lock_get_owner_id(l, &owner);
        if (!rc && owner)
            rc = redis_lock_ttl(l, &ttl);
    }
    if (rc) {
        code = cli_report(rc, "status of %s '%s'", a->limit ? "semaphore" : "lock", a->name);
        goto out;
    }
    /* -2: released between the questions */
    bool held = many ? nholders > 0 : owner && ttl != -2;
    /* a shared lock held by an exclusive holder lists that one; held shared, the marker
     * stands for "shared" and the holders are listed */
    bool exclusive = held && a->shared && owner && nholders == 1 &&
                     strcmp(owner, holders[0].id) == 0;
    char node[300] = "";
    redis_lock_client_node(c, node, sizeof node);
    if (a->json) {
        sb_adds(&b, "{\"name\":");
        sb_json_string(&b, a->name);
        sb_addf(&b, ",\"held\":%s,\"owner\":", held ? "true" : "false");
        if (held && (!many || exclusive))
            sb_json_string(&b, owner);
        else
            sb_adds(&b, "null");
        if (held && (!many || exclusive) && ttl >= 0)
            sb_addf(&b, ",\"ttl_ms\":%lld", (long long)ttl);
        else
            sb_adds(&b, ",\"ttl_ms\":null");
        if (a->limit)
            sb_addf(&b, ",\"limit\":%d", a->limit);
        if (many)
            add_holders_json(&b, holders, nholders);
        sb_adds(&b, ",\"node\":");
        sb_json_string(&b, node);
        sb_adds(&b, "}\n");
    } else if (held && many && !exclusive) {
        sb_addf(&b, "held by %zu holder%s%s\n", nholders, nholders == 1 ? "" : "s",
                a->shared ? " (shared)" : "");
        add_holders_text(&b, holders, nholders);
    } else if (held) {
        sb_adds(&b, "held by ");
        sb_text(&b, owner);
        if (ttl >= 0)
            sb_addf(&b, ", expires in %lld ms\n", (long long)ttl);
        else
            sb_adds(&b, ", no expiry\n");
    } else {
        sb_adds(&b, "free\n");
    }
    if (!a->json && cli_verbose)
        cli_err("answered by %s", node);
    if (b.oom) {
        cli_err("out of memory");
        code = EX_SOFTWARE;
    } else {
        code = cli_write_stdout(b.data, b.len);
        if (!code)
            code = held ? 0 : 1;
    }
out:
    free(b.data);
    free(owner);
    redis_lock_holders_free(holders, nholders);
    redis_lock_free(l);
    redis_lock_client_close(c);
    return code;
}

int cmd_reset(cli_args *a)
{
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    int code = cli_open_client(&c, a, 0);
    if (code)
        return code;
    if ((code = cli_new_lock(&l, c, a->name, NULL)))
        goto out;
    int rc = redis_lock_reset(l);
    if (rc)
        code = cli_report(rc, "resetting lock '%s'", a->name);
out:
    redis_lock_free(l);
    redis_lock_client_close(c);
    return code;
}

int cmd_reset_all(cli_args *a)
{
    if (!a->yes && isatty(STDIN_FILENO))
        return cli_usage_error(a->spec->name, "this deletes every lock in the database; add "
                               "--yes to confirm");
    redis_lock_client *c = NULL;
    int code = cli_open_client(&c, a, 0);
    if (code)
        return code;
    size_t count = 0;
    int rc = redis_lock_reset_all(c, &count);
    if (rc) {
        code = cli_report(rc, "resetting all locks");
    } else {
        char line[32];
        int n = snprintf(line, sizeof line, "%zu\n", count);
        code = cli_write_stdout(line, (size_t)n);
    }
    redis_lock_client_close(c);
    return code;
}
