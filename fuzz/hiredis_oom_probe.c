/* The OOM walk's boundary (docs/reliability.md, "Where hiredis allocates"): test_oom fails
 * only the library's own allocations. This probe checks the claim made about hiredis's: for
 * each hiredis function the library uses, fail the 1st, 2nd, ... libc allocation made
 * inside it (malloc/calloc/realloc are interposed in this executable) and require a clean
 * error return, never an abort, until a run completes with nothing failed.
 *
 * Built without sanitizers only (they interpose malloc themselves). Each run is a forked
 * child, so an abort is seen as a signal. Exit status 0 when every function behaves. */
#include <hiredis/hiredis.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t a, size_t b);
void *__libc_realloc(void *p, size_t n);
void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);

static long countdown = -1; /* the allocation that fails when it reaches 0; -1: none */
static long counted;

static int fail_now(void)
{
    if (countdown < 0)
        return 0;
    counted++;
    return countdown-- == 0;
}

void *malloc(size_t n)
{
    return fail_now() ? NULL : __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    return fail_now() ? NULL : __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __libc_realloc(p, n);
}

static const char reply[] = "*3\r\n:0\r\n$24\r\nAAAAAAAAAAAAAAAAAAAAAAAA\r\n*2\r\n+OK\r\n-ERR x\r\n";

/* 0: completed; 1: a clean error return */
static int probe_reader_create(void)
{
    redisReader *r = redisReaderCreate();
    if (!r)
        return 1;
    redisReaderFree(r);
    return 0;
}

static int probe_reader(void)
{
    countdown = -1; /* the reader itself is created without failures */
    redisReader *r = redisReaderCreate();
    if (!r)
        return 2;
    countdown = atol(getenv("PROBE_K"));
    int rc = 0;
    if (redisReaderFeed(r, reply, sizeof reply - 1) != REDIS_OK) {
        rc = r->err == REDIS_ERR_OOM ? 1 : 3;
    } else {
        void *out = NULL;
        if (redisReaderGetReply(r, &out) != REDIS_OK)
            rc = r->err == REDIS_ERR_OOM ? 1 : 3;
        else if (!out)
            rc = 3;
        else
            freeReplyObject(out);
    }
    countdown = -1;
    redisReaderFree(r);
    return rc;
}

static int probe_format(void)
{
    char *cmd = NULL;
    const char *argv[4] = {"EVALSHA", "170b2b8e13d359a6bc44d59a9768bf12ca8bdd1e", "2", "lock:x"};
    int n = redisFormatCommandArgv(&cmd, 4, argv, NULL);
    if (n < 0)
        return 1;
    redisFreeCommand(cmd);
    return 0;
}

static int walk(const char *name, int (*fn)(void))
{
    for (long k = 0; k < 200; k++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            char kbuf[24];
            snprintf(kbuf, sizeof kbuf, "%ld", k);
            setenv("PROBE_K", kbuf, 1);
            countdown = k;
            counted = 0;
            int rc = fn();
            long c = counted;
            countdown = -1;
            /* completed with the k-th allocation never reached: the walk is over */
            _exit(rc == 0 && c <= k ? 0 : rc == 0 ? 4 : rc);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) {
            printf("%-24s allocation %ld failing: died of signal %d (%s)\n", name, k + 1,
                   WTERMSIG(status), strsignal(WTERMSIG(status)));
            return 1;
        }
        int code = WEXITSTATUS(status);
        if (code == 0) {
            printf("%-24s %ld allocation%s walked: each failure a clean error\n", name, k,
                   k == 1 ? "" : "s");
            return k > 0 ? 0 : 1; /* a function that allocates nothing proves nothing */
        }
        if (code != 1 && code != 4) {
            printf("%-24s allocation %ld failing: unexpected result %d\n", name, k + 1, code);
            return 1;
        }
    }
    printf("%-24s still failing after 200 allocations\n", name);
    return 1;
}

int main(void)
{
    int bad = 0;
    bad += walk("redisReaderCreate", probe_reader_create);
    bad += walk("redisReaderFeed/GetReply", probe_reader);
    bad += walk("redisFormatCommandArgv", probe_format);
    printf("%s\n", bad ? "FAIL" : "PASS: no hiredis function the library uses aborts on OOM");
    return bad ? 1 : 0;
}
