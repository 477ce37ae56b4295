/* s390 csum_partial: the CKSM (checksum) instruction over a buffer. */
#ifndef DUMPLAB_CKSM_H
#define DUMPLAB_CKSM_H

/* 32-bit one's-complement-style sum of the big-endian words of buf, added to initial, carries
 * folded back in (end-around carry); a trailing 1-3 bytes count as a word zero-padded on the
 * right.  Same as Linux's s390 csum_partial(buf, len, initial). */
unsigned int cksm(const void *buf, unsigned long len, unsigned int initial);

#endif
