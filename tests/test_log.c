/* labels: threaded */
/* The log callback: each step (acquiring, acquired, waiting, renewing, releasing, lost)
 * with a syslog priority, also from the renewal thread; silent without a callback. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

typedef struct {
    pthread_mutex_t mu;
    char lines[512][200];
    int levels[512];
    bool other_thread[512];
    int n;
    pthread_t main_thread;
} sink;

static void collect(int level, const char *message, void *payload)
{
    sink *s = payload;
    pthread_mutex_lock(&s->mu);
    if (s->n < 512) {
        snprintf(s->lines[s->n], sizeof s->lines[s->n], "%s", message);
        s->levels[s->n] = level;
        s->other_thread[s->n] = !pthread_equal(pthread_self(), s->main_thread);
        s->n++;
    }
    pthread_mutex_unlock(&s->mu);
}

/* The first logged line starting with word at one of the given levels; -1 if none. */
static int find(sink *s, const char *word)
{
    pthread_mutex_lock(&s->mu);
    int found = -1;
    for (int i = 0; i < s->n && found < 0; i++)
        if (strncmp(s->lines[i], word, strlen(word)) == 0)
            found = i;
    pthread_mutex_unlock(&s->mu);
    return found;
}

static void lost_cb(redis_lock *l, void *p)
{
    (void)l;
    (void)p;
}

static void log_steps(void **state)
{
    (void)state;
    sink *s = calloc(1, sizeof *s);
    assert_non_null(s);
    pthread_mutex_init(&s->mu, NULL);
    s->main_thread = pthread_self();
    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    co.url = rt_main.url;
    co.log = collect;
    co.log_payload = s;
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &co));
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 300;
    o.auto_renewal = true;
    o.on_lost = lost_cb;
    redis_lock *l = NULL, *w = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "logged", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&w, c, "logged", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(w, 100));
    rt_sleep_ms(450); /* a renewal */
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(w));
    int64_t end = rt_now_ms() + 2000;
    while (find(s, "lost") < 0 && rt_now_ms() < end)
        rt_sleep_ms(10);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(w, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    static const char *steps[] = {"connected", "acquiring", "acquired", "waiting",
                                  "renewing",  "resetting", "lost",     "releasing",
                                  "released"};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int at = find(s, steps[i]);
        if (at < 0)
            fail_msg("no \"%s\" line in the log (%d lines)", steps[i], s->n);
    }
    pthread_mutex_lock(&s->mu);
    bool renewal_thread_logged = false;
    for (int i = 0; i < s->n; i++) {
        assert_true(s->levels[i] >= LOG_ERR && s->levels[i] <= LOG_DEBUG);
        if (s->other_thread[i])
            renewal_thread_logged = true;
    }
    pthread_mutex_unlock(&s->mu);
    assert_true(renewal_thread_logged);
    /* a lost lock is worth more than a debug line */
    assert_true(s->levels[find(s, "lost")] <= LOG_WARNING);
    redis_lock_free(l);
    redis_lock_free(w);
    redis_lock_client_close(c);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void log_silent_without_callback(void **state)
{
    (void)state;
    /* no callback: nothing is printed on stdout/stderr either */
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    char path[300];
    snprintf(path, sizeof path, "%s/silence.txt", rt_main.dir);
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    dup2(fileno(f), 1);
    dup2(fileno(f), 2);
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = NULL;
    int rc = redis_lock_new(&l, c, "quiet", NULL);
    if (!rc)
        rc = redis_lock_acquire(l, 0);
    if (!rc)
        rc = redis_lock_release(l);
    redis_lock_free(l);
    redis_lock_client_close(c);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    assert_rl(REDIS_LOCK_OK, rc);
    assert_int_equal(size, 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(log_steps, rt_flush),
        cmocka_unit_test_setup(log_silent_without_callback, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
