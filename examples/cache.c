/* cache.c - dogpile-safe get-or-set: many callers, one computation.
 *   ./cache KEY   (URL from $REDIS_URL) */
#include <redis_lock.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The expensive computation: runs only in the one caller that holds "get_or_set:KEY". */
static int compute(void *payload, char **value, size_t *len)
{
    (void)payload;
    sleep(1);
    *value = malloc(64);
    if (!*value)
        return 1;
    *len = (size_t)snprintf(*value, 64, "computed by pid %d", (int)getpid());
    return 0; /* the library now owns *value */
}

int main(int argc, char **argv)
{
    const char *key = argc > 1 ? argv[1] : "example:cache";
    redis_lock_client *client = NULL;
    int rc = redis_lock_client_open(&client, NULL);
    if (!rc) {
        redis_lock_cache_options opts;
        redis_lock_cache_options_init(&opts);
        opts.ttl_ms = 60000;     /* the value lives a minute */
        opts.timeout_ms = 10000; /* wait at most 10 s for another caller's computation */
        char *value = NULL;
        size_t len = 0;
        rc = redis_lock_cache_get_or_set(client, key, &opts, compute, NULL, &value, &len);
        if (!rc)
            printf("%s = %.*s\n", key, (int)len, value);
        free(value); /* malloc'd by the library, NUL-terminated */
    }
    if (rc)
        fprintf(stderr, "cache: %s: %s\n", redis_lock_strerror(rc), redis_lock_last_error());
    redis_lock_client_close(client);
    return rc ? 1 : 0;
}
