/* Shared by the fuzz targets and the corpus replay driver. */
#ifndef RL_FUZZ_H
#define RL_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Abort with a message: a broken invariant is a finding, like a crash. */
#define FUZZ_CHECK(cond, ...)                                                   \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s\n", __FILE__,   \
                    __LINE__, #cond);                                           \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* hiredis 0.14's reader allocates an array reply's element table (N * 8 bytes) as soon
 * as it reads "*N", before any element arrives: "*1000000000" from the server is an 8 GB
 * calloc. That is hiredis's behaviour with a hostile server (docs/reliability.md), not the
 * library's; inputs announcing an array longer than this are skipped so the fuzzer can
 * go on looking for the library's own faults. */
#define FUZZ_MAX_ARRAY 100000
static inline int fuzz_has_huge_array(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '*')
            continue;
        unsigned long long v = 0;
        size_t j = i + 1;
        while (j < n && p[j] >= '0' && p[j] <= '9' && v <= FUZZ_MAX_ARRAY)
            v = v * 10 + (unsigned)(p[j++] - '0');
        if (v > FUZZ_MAX_ARRAY)
            return 1;
    }
    return 0;
}

#endif
