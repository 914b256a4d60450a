/* Fuzz target: arbitrary bytes from "the server" through hiredis's redisReader, and every
 * reply (and every nested element) through the library's reply parsers:
 * rl_parse_acquire_reply (src/acquire.c), rl_reply_error and rl_is_noscript (src/conn.c,
 * src/scripts.c). None may crash, read out of bounds or accept a malformed reply.
 *
 * The input is fed twice: in one piece, and in pieces whose sizes come from the input,
 * so partial-reply handling in the reader is exercised too; both must yield the same
 * replies. The other reply checks of the library are inline in its calls; they are
 * fuzzed through a real client by fuzz_client_replies.c. */
#include "fuzz.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void check_acquire_reply(const redisReply *r, const char *id)
{
    try_result res;
    memset(&res, 0xa5, sizeof res);
    int rc = rl_parse_acquire_reply(r, id, &res);
    FUZZ_CHECK(rc == 0 || rc == REDIS_LOCK_ESERVER, "rl_parse_acquire_reply returned %d", rc);
    if (rc != 0)
        return;
    /* accepted: it must have the shape the acquire script returns */
    FUZZ_CHECK(r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
                   r->element[0]->type == REDIS_REPLY_INTEGER,
               "accepted a reply of type %d", r->type);
    if (res.acquired) {
        FUZZ_CHECK(r->element[0]->integer == 1 && r->elements == 2 &&
                       r->element[1]->type == REDIS_REPLY_INTEGER &&
                       res.token == r->element[1]->integer,
                   "acquired from a malformed reply");
        FUZZ_CHECK(!res.mine, "acquired and mine at once");
    } else {
        FUZZ_CHECK(r->element[0]->integer == 0 && r->elements == 3, "busy from a bad reply");
        FUZZ_CHECK(res.pttl >= -2, "pttl %lld accepted", (long long)res.pttl);
        FUZZ_CHECK(!res.mine || (r->element[1]->type == REDIS_REPLY_STRING &&
                                   r->element[1]->len == strlen(id) &&
                                   memcmp(r->element[1]->str, id, r->element[1]->len) == 0),
                   "mine for another owner");
    }
}

static void check_reply(const redisReply *r, int depth)
{
    FUZZ_CHECK(r != NULL, "NULL reply element");
    check_acquire_reply(r, "AAAAAAAAAAAAAAAAAAAAAAAA");
    check_acquire_reply(r, "x");
    /* an owner string inside the reply, as the id: exercises the "mine" path */
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[1] &&
        r->element[1]->type == REDIS_REPLY_STRING && r->element[1]->len < 64) {
        char id[64];
        memcpy(id, r->element[1]->str, r->element[1]->len);
        id[r->element[1]->len] = '\0';
        if (id[0])
            check_acquire_reply(r, id);
    }
    int rc = rl_reply_error(r, "fuzz");
    FUZZ_CHECK(rc == (r->type == REDIS_REPLY_ERROR ? REDIS_LOCK_ESERVER : 0),
               "rl_reply_error returned %d for type %d", rc, r->type);
    if (rl_is_noscript(r))
        FUZZ_CHECK(r->type == REDIS_REPLY_ERROR && r->len >= 8, "NOSCRIPT of a non-error");
    if (r->type == REDIS_REPLY_ARRAY && depth < 8)
        for (size_t i = 0; i < r->elements; i++)
            check_reply(r->element[i], depth + 1);
}

/* Read every reply out of data, fed in pieces of the given sizes (0: one piece).
 * Returns how many replies came out; *err: the reader reported a protocol error. */
static size_t run_reader(const uint8_t *data, size_t size, const uint8_t *sizes, size_t nsizes,
                         int *err, uint64_t *digest)
{
    redisReader *rd = redisReaderCreate();
    if (!rd)
        return 0;
    size_t off = 0, replies = 0, si = 0;
    *err = 0;
    *digest = 0;
    while (!*err) {
        void *reply = NULL;
        if (redisReaderGetReply(rd, &reply) != REDIS_OK) {
            *err = 1;
            break;
        }
        if (reply) {
            check_reply(reply, 0);
            const redisReply *r = reply;
            *digest = *digest * 31 + (uint64_t)r->type * 7 + (uint64_t)r->len + r->elements;
            freeReplyObject(reply);
            replies++;
            continue;
        }
        if (off >= size)
            break;
        size_t n = size - off;
        if (nsizes) {
            size_t want = (size_t)sizes[si++ % nsizes] % 17 + 1;
            if (want < n)
                n = want;
        }
        if (redisReaderFeed(rd, (const char *)data + off, n) != REDIS_OK)
            *err = 1;
        off += n;
    }
    redisReaderFree(rd);
    return replies;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16 || fuzz_has_huge_array(data, size))
        return 0;
    int err1, err2;
    uint64_t d1, d2;
    size_t n1 = run_reader(data, size, NULL, 0, &err1, &d1);
    size_t n2 = run_reader(data, size, data, size < 64 ? size : 64, &err2, &d2);
    FUZZ_CHECK(n1 == n2 && err1 == err2 && d1 == d2,
               "feeding in pieces changed the replies (%zu/%d vs %zu/%d)", n1, err1, n2, err2);
    return 0;
}
