/* turns.c - the demo: N processes take turns on one lock, each holding it briefly.
 * Prints who holds the lock when, and checks that no two holds overlapped.
 *   ./turns [PROCESSES [ROUNDS]]   (URL from $REDIS_URL) */
#include <redis_lock.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    double start, end;
    int who;
} hold;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int worker(int who, int rounds, hold *holds, int *next)
{
    redis_lock_client *client = NULL;
    redis_lock *lock = NULL;
    redis_lock_options opts;
    redis_lock_options_init(&opts);
    opts.expire_ms = 5000;
    int rc = redis_lock_client_open(&client, NULL);
    if (!rc)
        rc = redis_lock_new(&lock, client, "demo:turns", &opts);
    for (int i = 0; !rc && i < rounds; i++) {
        if ((rc = redis_lock_acquire(lock, 4000)))
            break;
        int slot = __atomic_fetch_add(next, 1, __ATOMIC_SEQ_CST);
        holds[slot].who = who;
        holds[slot].start = now_s();
        printf("  process %d (id %.8s...) holds the lock\n", who, redis_lock_id(lock));
        fflush(stdout);
        usleep(50000); /* the critical section */
        holds[slot].end = now_s();
        rc = redis_lock_release(lock);
        usleep(20000); /* work outside the lock, giving the others their turn */
    }
    if (rc)
        fprintf(stderr, "process %d: %s: %s\n", who, redis_lock_strerror(rc),
                redis_lock_last_error());
    redis_lock_free(lock);
    redis_lock_client_close(client);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    int procs = argc > 1 ? atoi(argv[1]) : 4, rounds = argc > 2 ? atoi(argv[2]) : 3;
    if (procs < 1 || procs > 64 || rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: turns [PROCESSES 1..64 [ROUNDS 1..100]]\n");
        return 64;
    }
    size_t n = (size_t)(procs * rounds);
    hold *holds = mmap(NULL, n * sizeof *holds + sizeof(int), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (holds == MAP_FAILED)
        return 70;
    int *next = (int *)(holds + n);
    printf("%d processes take turns on lock \"demo:turns\", %d rounds each:\n", procs, rounds);
    fflush(stdout);
    for (int p = 0; p < procs; p++)
        if (fork() == 0)
            _exit(worker(p, rounds, holds, next));
    int failed = 0, status;
    while (wait(&status) > 0)
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    int overlaps = 0;
    for (int i = 0; i < *next; i++)
        for (int j = 0; j < *next; j++)
            if (i != j && holds[i].start < holds[j].start && holds[j].start < holds[i].end)
                overlaps++;
    printf("%d holds, %d overlapping, %d failed processes\n", *next, overlaps, failed);
    return failed || overlaps || *next != (int)n ? 1 : 0;
}
