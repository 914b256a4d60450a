/* Reading a caller's options struct: only the fields of the caller's version. */
#include "internal.h"

#include <string.h>

void rl_options_init(void *dst, const void *defaults, const size_t *ends, unsigned current,
                     unsigned version)
{
    if (!dst)
        return;
    /* A version newer than ours (a newer header, an older library): the fields we know;
     * the version stays the caller's, so using the struct reports it. */
    if (version >= 1)
        memcpy(dst, defaults, ends[version <= current ? version : current]);
    memcpy(dst, &version, sizeof version);
}

int rl_options_copy(void *dst, const void *src, const size_t *ends, unsigned current,
                    const char *type)
{
    unsigned version;
    memcpy(&version, src, sizeof version);
    if (version < 1 || version > current)
        return rl_error(REDIS_LOCK_EINVAL, "%s version %u, expected 1 to %u (fill it with "
                        "%s_init)", type, version, current, type);
    memcpy(dst, src, ends[version]);
    return 0;
}
