/* Reading a caller's options struct: only the fields of the caller's version. */
#include "internal.h"

#include <string.h>

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
