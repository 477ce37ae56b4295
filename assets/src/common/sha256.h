/* SHA-256 (FIPS 180-4) in plain C.  No CPACF: unicorn has no KIMD/KLMD SHA-256. */
#ifndef DUMPLAB_SHA256_H
#define DUMPLAB_SHA256_H

#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_BLOCK_SIZE  64

struct sha256_ctx {
	uint32_t state[8];
	uint64_t count;			/* bytes hashed so far */
	unsigned char buf[SHA256_BLOCK_SIZE];	/* partial block, count % 64 bytes used */
};

void sha256_init(struct sha256_ctx *ctx);
void sha256_update(struct sha256_ctx *ctx, const void *data, unsigned long len);
void sha256_final(struct sha256_ctx *ctx, unsigned char out[SHA256_DIGEST_SIZE]);
void sha256(const void *data, unsigned long len, unsigned char out[SHA256_DIGEST_SIZE]);

#endif
