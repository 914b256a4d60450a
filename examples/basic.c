/* basic.c - take a lock, do work under it, release it; the same with redis_lock_with.
 *   cc basic.c $(pkg-config --cflags --libs redis-lock) -o basic && ./basic [URL]  */
#include <redis_lock.h>

#include <stdio.h>
#include <stdlib.h>

static int work(void *payload)
{
    printf("working under lock %s\n", (const char *)payload);
    return 0;
}

int main(int argc, char **argv)
{
    redis_lock_client_options copts;
    redis_lock_client_options_init(&copts);
    copts.url = argc > 1 ? argv[1] : NULL; /* NULL: $REDIS_URL or redis://127.0.0.1:6379/0 */

    redis_lock_client *client = NULL;
    int rc = redis_lock_client_open(&client, &copts);
    if (rc) {
        fprintf(stderr, "connect: %s: %s\n", redis_lock_strerror(rc), redis_lock_last_error());
        return 1;
    }

    redis_lock_options opts;
    redis_lock_options_init(&opts);
    opts.expire_ms = 10000;   /* the key expires if we die */
    opts.auto_renewal = true; /* ... but is renewed while we live */
    opts.fencing = true;

    redis_lock *lock = NULL;
    if ((rc = redis_lock_new(&lock, client, "example:basic", &opts)) == 0) {
        rc = redis_lock_acquire(lock, 5000); /* wait at most 5 s */
        if (rc == REDIS_LOCK_OK) {
            printf("acquired as %s, fencing token %lld\n", redis_lock_id(lock),
                   (long long)redis_lock_fencing_token(lock));
            rc = redis_lock_release(lock);
        } else if (rc == REDIS_LOCK_BUSY) {
            printf("someone else holds it\n");
        }
        if (rc == REDIS_LOCK_OK || rc == REDIS_LOCK_BUSY)
            rc = redis_lock_with(lock, 5000, work, "example:basic"); /* acquire, run, release */
    }
    if (rc)
        fprintf(stderr, "lock: %s: %s\n", redis_lock_strerror(rc), redis_lock_last_error());
    redis_lock_free(lock);
    redis_lock_client_close(client);
    return rc ? 1 : 0;
}
