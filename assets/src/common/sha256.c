/* SHA-256 after FIPS 180-4, sections 4.1.2, 4.2.2, 5.1.1, 5.3.3 and 6.2.
 *
 * Written for speed under emulation, where every spilled register costs a softmmu memory
 * access: the 64 rounds are unrolled so that the eight working variables stay in registers
 * (their names rotate instead of the values), Sigma0/Sigma1 are nested to need one temporary,
 * Maj reuses the previous round's a^b, and the message schedule is a 16-word ring advanced 16
 * words at a time (W[t mod 16]: every input a new word needs is an original word or one
 * already computed in the same pass).  The Makefile compiles this file with
 * -fno-tree-reassoc, which keeps gcc from reordering the round sums into a form that needs
 * more registers (measured 1.25x faster under unicorn).
 */
#include "sha256.h"
#include "libc.h"

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n)	(((x) >> (n)) | ((x) << (32 - (n))))
/* Sigma0/Sigma1 nested so that one temporary suffices: ROTR(ROTR(ROTR(x,9)^x,11)^x,2) is
 * ROTR(x,2)^ROTR(x,13)^ROTR(x,22). */
#define BSIG0(x)	ROTR(ROTR(ROTR(x, 9) ^ (x), 11) ^ (x), 2)
#define BSIG1(x)	ROTR(ROTR(ROTR(x, 14) ^ (x), 5) ^ (x), 6)
#define SSIG0(x)	(ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x)	(ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))
#define CH(x, y, z)	((((y) ^ (z)) & (x)) ^ (z))

/* Maj(a,b,c) = b ^ ((a^b) & (b^c)); b^c is the previous round's a^b. */
#define ROUND(a, b, c, d, e, f, g, h, k, w)					\
	do {									\
		uint32_t t1 = (h) + BSIG1(e) + CH(e, f, g) + (k) + (w);		\
		ab = (a) ^ (b);							\
		(d) += t1;							\
		(h) = t1 + BSIG0(a) + ((b) ^ (ab & bc));			\
		bc = ab;							\
	} while (0)

#define ROUNDS8(i)								\
	do {									\
		ROUND(a, b, c, d, e, f, g, h, K[(i) + 0], W[((i) + 0) & 15]);	\
		ROUND(h, a, b, c, d, e, f, g, K[(i) + 1], W[((i) + 1) & 15]);	\
		ROUND(g, h, a, b, c, d, e, f, K[(i) + 2], W[((i) + 2) & 15]);	\
		ROUND(f, g, h, a, b, c, d, e, K[(i) + 3], W[((i) + 3) & 15]);	\
		ROUND(e, f, g, h, a, b, c, d, K[(i) + 4], W[((i) + 4) & 15]);	\
		ROUND(d, e, f, g, h, a, b, c, K[(i) + 5], W[((i) + 5) & 15]);	\
		ROUND(c, d, e, f, g, h, a, b, K[(i) + 6], W[((i) + 6) & 15]);	\
		ROUND(b, c, d, e, f, g, h, a, K[(i) + 7], W[((i) + 7) & 15]);	\
	} while (0)

static inline uint32_t load_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void store_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void sha256_blocks(uint32_t state[8], const unsigned char *p, unsigned long nblocks)
{
	uint32_t W[16];
	int t;

	for (; nblocks; nblocks--, p += SHA256_BLOCK_SIZE) {
		uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
		uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
		uint32_t ab, bc = b ^ c;

		for (t = 0; t < 16; t++)
			W[t] = load_be32(p + 4 * t);
		ROUNDS8(0);
		ROUNDS8(8);
		for (t = 16; t < 64; t += 16) {
			int j;

			for (j = 0; j < 16; j++)
				W[j] += SSIG1(W[(j + 14) & 15]) + W[(j + 9) & 15] +
					SSIG0(W[(j + 1) & 15]);
			ROUNDS8(t);
			ROUNDS8(t + 8);
		}
		state[0] += a;
		state[1] += b;
		state[2] += c;
		state[3] += d;
		state[4] += e;
		state[5] += f;
		state[6] += g;
		state[7] += h;
	}
}

void sha256_init(struct sha256_ctx *ctx)
{
	/* FIPS 180-4 5.3.3 */
	ctx->state[0] = 0x6a09e667;
	ctx->state[1] = 0xbb67ae85;
	ctx->state[2] = 0x3c6ef372;
	ctx->state[3] = 0xa54ff53a;
	ctx->state[4] = 0x510e527f;
	ctx->state[5] = 0x9b05688c;
	ctx->state[6] = 0x1f83d9ab;
	ctx->state[7] = 0x5be0cd19;
	ctx->count = 0;
}

void sha256_update(struct sha256_ctx *ctx, const void *data, unsigned long len)
{
	const unsigned char *p = data;
	unsigned long used = (unsigned long)(ctx->count % SHA256_BLOCK_SIZE);

	ctx->count += len;
	if (used) {
		unsigned long take = SHA256_BLOCK_SIZE - used;

		if (len < take) {
			memcpy(ctx->buf + used, p, len);
			return;
		}
		memcpy(ctx->buf + used, p, take);
		sha256_blocks(ctx->state, ctx->buf, 1);
		p += take;
		len -= take;
	}
	if (len >= SHA256_BLOCK_SIZE) {
		sha256_blocks(ctx->state, p, len / SHA256_BLOCK_SIZE);
		p += len & ~(unsigned long)(SHA256_BLOCK_SIZE - 1);
		len %= SHA256_BLOCK_SIZE;
	}
	if (len)
		memcpy(ctx->buf, p, len);
}

void sha256_final(struct sha256_ctx *ctx, unsigned char out[SHA256_DIGEST_SIZE])
{
	/* FIPS 180-4 5.1.1: a 1 bit, zeros, then the length in bits as a 64-bit big-endian. */
	unsigned long used = (unsigned long)(ctx->count % SHA256_BLOCK_SIZE);
	uint64_t bits = ctx->count * 8;
	int i;

	ctx->buf[used++] = 0x80;
	if (used > SHA256_BLOCK_SIZE - 8) {
		memset(ctx->buf + used, 0, SHA256_BLOCK_SIZE - used);
		sha256_blocks(ctx->state, ctx->buf, 1);
		used = 0;
	}
	memset(ctx->buf + used, 0, SHA256_BLOCK_SIZE - 8 - used);
	store_be32(ctx->buf + 56, (uint32_t)(bits >> 32));
	store_be32(ctx->buf + 60, (uint32_t)bits);
	sha256_blocks(ctx->state, ctx->buf, 1);
	for (i = 0; i < 8; i++)
		store_be32(out + 4 * i, ctx->state[i]);
	memset(ctx, 0, sizeof(*ctx));
}

void sha256(const void *data, unsigned long len, unsigned char out[SHA256_DIGEST_SIZE])
{
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, data, len);
	sha256_final(&ctx, out);
}
