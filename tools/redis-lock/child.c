/* Signals and the command. Signals, the command's exit and the library's on_lost callback
 * (renewal thread) all end up as a byte in one self-pipe, so the supervising loop is a
 * poll() on that pipe and none of them can slip between a check and a wait. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

extern char **environ;

/* ---- state shared with signal handlers and the library's renewal thread ---- */
static atomic_int g_phase;
static _Atomic(redis_lock *) g_lock;                 /* what a signal cancels in PHASE_WAIT */
static _Atomic(redis_lock_cancel_token *) g_token;   /* ... and in PHASE_CACHE */
static atomic_int g_signal;        /* the last SIGINT/SIGTERM/SIGHUP received */
static atomic_int g_pending[NSIG]; /* 1: pass on to the command; 2: it got it already */
static atomic_int g_lost;          /* on_lost was called */
static int g_pipe[2] = {-1, -1};   /* the self-pipe */

static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP};
static const int SAVED[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE};
static struct sigaction g_orig_act[NSIG]; /* as we found them: the command gets these back */
static sigset_t g_orig_mask;

void cli_set_phase(cli_phase phase)
{
    atomic_store(&g_phase, (int)phase);
}

void cli_set_wait_lock(redis_lock *lock)
{
    atomic_store(&g_lock, lock);
}

void cli_set_cache_token(redis_lock_cancel_token *token)
{
    atomic_store(&g_token, token);
}

int cli_signal(void)
{
    return atomic_load(&g_signal);
}

void cli_signal_clear(void)
{
    atomic_store(&g_signal, 0);
}

static void wake(void)
{
    char c = 0;
    ssize_t n = write(g_pipe[1], &c, 1); /* full pipe: it is readable anyway */
    (void)n;
}

static void drain(void)
{
    char buf[256];
    while (read(g_pipe[0], buf, sizeof buf) > 0)
        ;
}

static void on_signal(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    int saved = errno;
    /* A SIGINT typed at the terminal (SI_KERNEL) went to the whole foreground process
     * group, the command included: passing it on would deliver it twice. */
    atomic_store(&g_pending[sig], sig == SIGINT && si && si->si_code == SI_KERNEL ? 2 : 1);
    atomic_store(&g_signal, sig);
    int phase = atomic_load(&g_phase);
    if (phase == PHASE_WAIT) {
        redis_lock *l = atomic_load(&g_lock);
        if (l)
            redis_lock_cancel(l); /* async-signal-safe */
    } else if (phase == PHASE_CACHE) {
        redis_lock_cancel_token *t = atomic_load(&g_token);
        if (t)
            redis_lock_cancel_token_cancel(t); /* async-signal-safe */
    }
    wake();
    errno = saved;
}

static void on_sigchld(int sig)
{
    (void)sig;
    int saved = errno;
    wake();
    errno = saved;
}

void cli_on_lost(redis_lock *lock, void *payload)
{
    (void)lock;
    (void)payload;
    atomic_store(&g_lost, 1); /* the renewal thread: must not call the library */
    wake();
}

void cli_signals_save(void)
{
    for (size_t i = 0; i < sizeof SAVED / sizeof *SAVED; i++)
        sigaction(SAVED[i], NULL, &g_orig_act[SAVED[i]]);
    sigprocmask(SIG_SETMASK, NULL, &g_orig_mask);
}

int cli_signals_setup(void)
{
    if (pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK)) {
        cli_err("cannot create a pipe: %s", strerror(errno));
        return EX_SOFTWARE;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof FORWARDED / sizeof *FORWARDED; i++)
        sigaddset(&sa.sa_mask, FORWARDED[i]);
    for (size_t i = 0; i < sizeof FORWARDED / sizeof *FORWARDED; i++) {
        int sig = FORWARDED[i];
        /* ignored when we started (nohup, a background job): leave it so, as shells do */
        if (g_orig_act[sig].sa_handler != SIG_IGN)
            sigaction(sig, &sa, NULL);
    }
    struct sigaction sc;
    memset(&sc, 0, sizeof sc);
    sc.sa_handler = on_sigchld;
    sc.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sc.sa_mask);
    sigaction(SIGCHLD, &sc, NULL);
    return 0;
}

/* ---- the command ---- */

static int status_of(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return EX_SOFTWARE;
}

pid_t cli_spawn(char **argv, char **envp, int out_fd, int *status)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC)) {
        cli_err("cannot create a pipe: %s", strerror(errno));
        *status = EX_SOFTWARE;
        return -1;
    }
    /* Until exec the child must not run our handlers (a passed-on SIGTERM would be
     * eaten by them): block everything across fork, restore the original state there. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        for (size_t i = 0; i < sizeof SAVED / sizeof *SAVED; i++)
            sigaction(SAVED[i], &g_orig_act[SAVED[i]], NULL);
        if (out_fd == STDOUT_FILENO)
            fcntl(out_fd, F_SETFD, 0);
        else if (out_fd >= 0)
            dup2(out_fd, STDOUT_FILENO);
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* redis-lock killed: the command is told at once */
        sigprocmask(SIG_SETMASK, &g_orig_mask, NULL);
        if (getppid() != parent) { /* it died before prctl took effect */
            raise(SIGTERM);
            _exit(128 + SIGTERM);
        }
        execvpe(argv[0], argv, envp ? envp : environ);
        int e = errno;
        ssize_t w = write(ep[1], &e, sizeof e);
        (void)w;
        _exit(e == ENOENT ? 127 : 126);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(ep[1]);
    if (pid < 0) {
        close(ep[0]);
        cli_err("cannot start a process: %s", strerror(fork_errno));
        *status = EX_SOFTWARE;
        return -1;
    }
    int e = 0;
    ssize_t n;
    do
        n = read(ep[0], &e, sizeof e);
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n != (ssize_t)sizeof e)
        return pid; /* exec succeeded: the close-on-exec pipe closed */
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (e == ENOENT && !strchr(argv[0], '/'))
        cli_err("%s: command not found", argv[0]);
    else
        cli_err("%s: %s", argv[0], strerror(e));
    *status = e == ENOENT ? 127 : 126;
    return -1;
}

static void pass_on_signals(pid_t pid)
{
    for (size_t i = 0; i < sizeof FORWARDED / sizeof *FORWARDED; i++) {
        int sig = FORWARDED[i];
        int v = atomic_exchange(&g_pending[sig], 0);
        if (v == 1) {
            cli_vlog("passing signal %d (%s) on to the command", sig, strsignal(sig));
            kill(pid, sig);
        }
    }
}

int cli_supervise(pid_t pid, int out_fd, strbuf *out, bool watch_lost, int64_t grace_ms,
                  const char *name, bool *lost)
{
    int st = 0;
    bool exited = false, killed = false;
    int64_t kill_at = 0;
    if (lost)
        *lost = false;
    for (;;) {
        drain();
        if (!exited)
            pass_on_signals(pid);
        if (watch_lost && !*lost && atomic_load(&g_lost)) {
            *lost = true;
            cli_err("lost lock '%s' while the command ran (reset, or not renewed before it "
                    "expired): stopping the command", name);
            if (!exited)
                kill(pid, SIGTERM);
            kill_at = cli_now_ms() + grace_ms;
        }
        if (!exited && lost && *lost && !killed && cli_now_ms() >= kill_at) {
            cli_vlog("the command outlived its grace period: SIGKILL");
            kill(pid, SIGKILL);
            killed = true;
        }
        if (!exited) {
            pid_t r = waitpid(pid, &st, WNOHANG);
            if (r == pid || (r < 0 && errno == ECHILD))
                exited = true;
        }
        if (exited && out_fd < 0)
            break;
        struct pollfd p[2] = {{g_pipe[0], POLLIN, 0}, {out_fd, POLLIN, 0}};
        int timeout = -1;
        if (!exited && lost && *lost && !killed) {
            int64_t left = kill_at - cli_now_ms();
            timeout = left <= 0 ? 0 : left > 1 << 30 ? 1 << 30 : (int)left;
        }
        int n = poll(p, out_fd >= 0 ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR) {
            cli_err("poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && out_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = -1;
            if (sb_reserve(out, 1 << 16))
                r = read(out_fd, out->data + out->len, out->cap - out->len - 1);
            if (r > 0) {
                out->len += (size_t)r;
            } else if (r == 0 || out->oom || (errno != EINTR && errno != EAGAIN)) {
                if (out->oom && !exited)
                    kill(pid, SIGTERM);
                close(out_fd);
                out_fd = -1;
            }
        }
    }
    if (out_fd >= 0)
        close(out_fd);
    if (out && out->data)
        out->data[out->len] = '\0';
    return status_of(st);
}
