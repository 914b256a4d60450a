/* Error codes, their names and messages, and the per-thread detail text. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[512];

const char *redis_lock_strerror(int code)
{
    switch (code) {
#define RL_MSG_(name, value, msg) \
    case value: return msg;
        REDIS_LOCK_ERRNO_MAP(RL_MSG_)
#undef RL_MSG_
    default: return "unknown error code";
    }
}

const char *redis_lock_code_name(int code)
{
    switch (code) {
#define RL_NAME_(name, value, msg) \
    case value: return "REDIS_LOCK_" #name;
        REDIS_LOCK_ERRNO_MAP(RL_NAME_)
#undef RL_NAME_
    default: return "REDIS_LOCK_UNKNOWN";
    }
}

const char *redis_lock_last_error(void)
{
    return last_error;
}

const char *redis_lock_version(void)
{
#define RL_STR2_(x) #x
#define RL_STR_(x) RL_STR2_(x)
    return RL_STR_(REDIS_LOCK_VERSION_MAJOR) "." RL_STR_(REDIS_LOCK_VERSION_MINOR) "." RL_STR_(
        REDIS_LOCK_VERSION_PATCH);
}

int rl_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

void rl_error_clear(void)
{
    last_error[0] = '\0';
}
