/* libtest: wrappers the host tests call by symbol (tests/test_guest_lib.py).
 *
 * The library functions themselves (memcpy, snprintf, cksm, sha256, ...) are linked in and
 * called directly; these wrappers only add what a single call from the host cannot do.
 */
#include "cksm.h"
#include "libc.h"
#include "sha256.h"

/* SHA-256 of data fed to sha256_update in pieces of `chunk` bytes (exercises the buffering). */
void t_sha256_chunked(const void *data, unsigned long len, unsigned long chunk,
		      unsigned char out[SHA256_DIGEST_SIZE])
{
	const unsigned char *p = data;
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	while (len) {
		unsigned long n = len < chunk ? len : chunk;

		sha256_update(&ctx, p, n);
		p += n;
		len -= n;
	}
	sha256_final(&ctx, out);
}

/* CKSM of a buffer in two parts, the first `split` bytes then the rest (split a multiple of 4),
 * chaining the sum as csum_partial callers do. */
unsigned int t_cksm_split(const void *buf, unsigned long len, unsigned long split)
{
	unsigned int sum = cksm(buf, split, 0);

	return cksm((const unsigned char *)buf + split, len - split, sum);
}

static int call_vsnprintf(char *buf, unsigned long size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

/* vsnprintf through a va_list built here, with eight arguments: most of them travel on the
 * stack, not in registers. */
int t_vsnprintf8(char *buf, unsigned long size, const char *fmt, const unsigned long *args)
{
	return call_vsnprintf(buf, size, fmt, args[0], args[1], args[2], args[3], args[4],
			      args[5], args[6], args[7]);
}

/* gcc copies a struct this large with a call to memcpy (smaller ones inline as MVC): proves
 * that the compiler's own calls reach the library's memcpy. */
struct big {
	unsigned char bytes[100000];
};

void t_copy_big(struct big *dst, const struct big *src)
{
	*dst = *src;
}
