/* reset_all: SCAN lock:* in batches and reset each lock found with the reset script
 * (pipelined, one batch per SCAN reply). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#define PREFIX "lock:"
#define PREFIX_LEN 5
#define SIGNAL_PREFIX "lock-signal:"
#define SIGNAL_PREFIX_LEN 12

/* Reset the locks of one SCAN reply's keys; adds the number of keys deleted to *count. */
static int reset_keys(redis_lock_client *c, rl_conn *conn, const redisReply *keys,
                      size_t *count)
{
    size_t n = 0;
    int rc = 0;
    if (!keys->elements)
        return 0;
    char **signals = rl_calloc(keys->elements, sizeof *signals);
    rl_script_call *calls = rl_calloc(keys->elements, sizeof *calls);
    redisReply **replies = rl_calloc(keys->elements, sizeof *replies);
    if (!signals || !calls || !replies)
        rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory in reset_all");
    for (size_t i = 0; !rc && i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len < PREFIX_LEN)
            continue;
        size_t slen = k->len - PREFIX_LEN + SIGNAL_PREFIX_LEN;
        if (!(signals[n] = rl_malloc(slen + 1))) {
            rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory in reset_all");
            break;
        }
        memcpy(signals[n], SIGNAL_PREFIX, SIGNAL_PREFIX_LEN);
        memcpy(signals[n] + SIGNAL_PREFIX_LEN, k->str + PREFIX_LEN, k->len - PREFIX_LEN);
        signals[n][slen] = '\0';
        rl_script_call *call = &calls[n++];
        call->nkeys = 2;
        call->keys[0] = k->str;
        call->keylens[0] = k->len;
        call->keys[1] = signals[n - 1];
        call->keylens[1] = slen;
        call->nargs = 1;
        call->args[0] = "1000"; /* the signal's expiry (ms) */
    }
    if (!rc && n)
        rc = rl_script_run(c, conn, RL_SCRIPT_RESET, calls, (int)n, replies, NULL, 0);
    for (size_t i = 0; !rc && i < n; i++) {
        if (replies[i]->type == REDIS_REPLY_INTEGER)
            *count += (size_t)replies[i]->integer;
        else if (!(rc = rl_reply_error(replies[i], "reset_all")))
            rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to the reset script");
    }
    for (size_t i = 0; replies && i < n; i++)
        if (replies[i])
            freeReplyObject(replies[i]);
    for (size_t i = 0; signals && i < n; i++)
        free(signals[i]);
    free(signals);
    free(calls);
    free(replies);
    return rc;
}

int redis_lock_reset_all(redis_lock_client *c, size_t *out_count)
{
    rl_error_clear();
    if (!c)
        return rl_error(REDIS_LOCK_EINVAL, "client is NULL");
    rl_client_check_fork(c);
    rl_conn *conn;
    int rc = rl_client_get(c, &conn);
    if (rc)
        return rc;
    char cursor[32] = "0";
    size_t count = 0;
    do {
        const char *argv[6] = {"SCAN", cursor, "MATCH", PREFIX "*", "COUNT", "1000"};
        redisReply *r = NULL;
        rc = rl_conn_command(c, conn, &r, 6, argv, NULL);
        if (!rc && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                    r->element[0]->type != REDIS_REPLY_STRING ||
                    r->element[1]->type != REDIS_REPLY_ARRAY))
            rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to SCAN");
        if (!rc) {
            snprintf(cursor, sizeof cursor, "%.*s", (int)r->element[0]->len,
                     r->element[0]->str);
            rc = reset_keys(c, conn, r->element[1], &count);
        }
        if (r)
            freeReplyObject(r);
    } while (!rc && strcmp(cursor, "0") != 0);
    rl_client_put(c, conn, rl_conn_reusable(rc));
    if (!rc) {
        rl_log(c, LOG_INFO, "reset %zu locks", count);
        if (out_count)
            *out_count = count;
    }
    return rc;
}
