/* A tiny freestanding C library for DumpLab guests (see libc.h).
 *
 * Compiled with -fno-tree-loop-distribute-patterns so that gcc does not turn the loops below
 * into calls to memset/memcpy, i.e. into themselves.
 *
 * The block moves use MVC/XC 256 bytes at a time and EXRL for the remainder: one emulated
 * instruction per 256 bytes instead of a few per byte.  MVC is architected to move byte by
 * byte from left to right, which is what makes the propagating memset and the forward
 * overlapping memmove below correct.
 */
#include "libc.h"

/* MVC of 1..256 bytes. */
static inline void mvc_n(unsigned char *d, const unsigned char *s, size_t n)
{
	asm volatile("	exrl	%[len],1f\n"
		     "	j	2f\n"
		     "1:	mvc	0(1,%[d]),0(%[s])\n"
		     "2:\n"
		     : : [len] "a" (n - 1), [d] "a" (d), [s] "a" (s) : "memory");
}

static void copy_forward(unsigned char *d, const unsigned char *s, size_t n)
{
	while (n >= 256) {
		asm volatile("mvc 0(256,%[d]),0(%[s])"
			     : : [d] "a" (d), [s] "a" (s) : "memory");
		d += 256;
		s += 256;
		n -= 256;
	}
	if (n)
		mvc_n(d, s, n);
}

void *memcpy(void *__restrict dst, const void *__restrict src, size_t n)
{
	copy_forward(dst, src, n);
	return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	size_t dist, chunk;

	if (d == s || n == 0)
		return dst;
	if (d < s || d >= s + n) {
		/* No overlap, or the destination is below the source: a left-to-right move. */
		copy_forward(d, s, n);
		return dst;
	}
	/* Destination overlaps the end of the source: copy backwards in chunks no longer than
	 * the distance, so that no chunk reads bytes it has already overwritten. */
	dist = (size_t)(d - s);
	if (dist < 16) {
		while (n) {
			n--;
			d[n] = s[n];
		}
		return dst;
	}
	chunk = dist < 256 ? dist : 256;
	while (n) {
		size_t k = n < chunk ? n : chunk;

		n -= k;
		mvc_n(d + n, s + n, k);
	}
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	unsigned char *p = dst;

	if (n == 0)
		return dst;
	if ((unsigned char)c == 0) {
		while (n >= 256) {
			asm volatile("xc 0(256,%[p]),0(%[p])" : : [p] "a" (p) : "memory");
			p += 256;
			n -= 256;
		}
		if (n)
			asm volatile("	exrl	%[len],1f\n"
				     "	j	2f\n"
				     "1:	xc	0(1,%[p]),0(%[p])\n"
				     "2:\n"
				     : : [len] "a" (n - 1), [p] "a" (p) : "memory");
		return dst;
	}
	/* Store the first byte, then let an overlapping MVC propagate it one byte to the right. */
	*p = (unsigned char)c;
	n--;
	while (n >= 256) {
		asm volatile("mvc 1(256,%[p]),0(%[p])" : : [p] "a" (p) : "memory");
		p += 256;
		n -= 256;
	}
	if (n)
		asm volatile("	exrl	%[len],1f\n"
			     "	j	2f\n"
			     "1:	mvc	1(1,%[p]),0(%[p])\n"
			     "2:\n"
			     : : [len] "a" (n - 1), [p] "a" (p) : "memory");
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x < *y ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	const char *p = s;

	while (*p)
		p++;
	return (size_t)(p - s);
}

size_t strnlen(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

	while (*x && *x == *y) {
		x++;
		y++;
	}
	return *x == *y ? 0 : (*x < *y ? -1 : 1);
}

int strncmp(const char *a, const char *b, size_t n)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

	for (; n; n--, x++, y++) {
		if (*x != *y)
			return *x < *y ? -1 : 1;
		if (!*x)
			break;
	}
	return 0;
}

char *strchr(const char *s, int c)
{
	for (;; s++) {
		if (*s == (char)c)
			return (char *)s;
		if (!*s)
			return NULL;
	}
}

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 10;
	return 99;
}

unsigned long strtoul(const char *s, char **end, int base)
{
	const char *p = s;
	unsigned long v = 0;
	int neg = 0, any = 0, overflow = 0;

	while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
		p++;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if ((base == 0 || base == 16) && p[0] == '0' && (p[1] | 0x20) == 'x' &&
	    digit_value(p[2]) < 16) {
		p += 2;
		base = 16;
	} else if (base == 0) {
		base = p[0] == '0' ? 8 : 10;
	}
	if (base < 2 || base > 36) {
		if (end)
			*end = (char *)s;
		return 0;
	}
	for (;; p++) {
		int d = digit_value(*p);

		if (d >= base)
			break;
		any = 1;
		if (v > (ULONG_MAX - (unsigned long)d) / (unsigned long)base)
			overflow = 1;
		else
			v = v * (unsigned long)base + (unsigned long)d;
	}
	if (end)
		*end = (char *)(any ? p : s);
	if (overflow)
		return ULONG_MAX;
	return neg ? -v : v;
}

/* ---- vsnprintf ---- */

struct sink {
	char *buf;
	size_t size;
	size_t pos;	/* length the full output would have */
};

static void put(struct sink *o, char c)
{
	if (o->pos + 1 < o->size)
		o->buf[o->pos] = c;
	o->pos++;
}

static void put_n(struct sink *o, char c, int n)
{
	while (n-- > 0)
		put(o, c);
}

#define F_LEFT 1
#define F_ZERO 2

static void put_str(struct sink *o, const char *s, int len, int width, int flags)
{
	int pad = width - len;

	if (!(flags & F_LEFT))
		put_n(o, ' ', pad);
	while (len-- > 0)
		put(o, *s++);
	if (flags & F_LEFT)
		put_n(o, ' ', pad);
}

/* prec < 0: no precision given. */
static void put_num(struct sink *o, unsigned long v, int neg, unsigned int base, int upper,
		    const char *prefix, int width, int prec, int flags)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0, plen = 0, zeros, pad;

	while (v) {
		tmp[n++] = digits[v % base];
		v /= base;
	}
	if (n == 0 && prec != 0)
		tmp[n++] = '0';
	if (neg)
		plen++;
	if (prefix)
		plen += (int)strlen(prefix);
	zeros = prec > n ? prec - n : 0;
	pad = width - plen - zeros - n;
	if ((flags & F_ZERO) && !(flags & F_LEFT) && prec < 0) {
		zeros += pad > 0 ? pad : 0;
		pad = 0;
	}
	if (!(flags & F_LEFT))
		put_n(o, ' ', pad);
	if (neg)
		put(o, '-');
	if (prefix)
		while (*prefix)
			put(o, *prefix++);
	put_n(o, '0', zeros);
	while (n)
		put(o, tmp[--n]);
	if (flags & F_LEFT)
		put_n(o, ' ', pad);
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct sink o = { buf, size, 0 };

	for (; *fmt; fmt++) {
		int flags = 0, width = 0, prec = -1, lng = 0;
		unsigned long v;
		long sv;
		char c;

		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		for (;; fmt++) {
			if (*fmt == '-')
				flags |= F_LEFT;
			else if (*fmt == '0')
				flags |= F_ZERO;
			else
				break;
		}
		if (*fmt == '*') {
			width = va_arg(ap, int);
			if (width < 0) {
				flags |= F_LEFT;
				width = -width;
			}
			fmt++;
		} else {
			while (*fmt >= '0' && *fmt <= '9')
				width = width * 10 + (*fmt++ - '0');
		}
		if (*fmt == '.') {
			fmt++;
			prec = 0;
			if (*fmt == '*') {
				prec = va_arg(ap, int);
				if (prec < 0)
					prec = -1;
				fmt++;
			} else {
				while (*fmt >= '0' && *fmt <= '9')
					prec = prec * 10 + (*fmt++ - '0');
			}
		}
		/* lng: -2 hh, -1 h, 0 int, 1 long / long long / size_t */
		if (*fmt == 'h') {
			lng = -1;
			if (*++fmt == 'h') {
				lng = -2;
				fmt++;
			}
		} else if (*fmt == 'l') {
			lng = 1;
			if (*++fmt == 'l')
				fmt++;
		} else if (*fmt == 'z') {
			lng = 1;
			fmt++;
		}
		c = *fmt;
		switch (c) {
		case 'd':
		case 'i':
			if (lng > 0)
				sv = va_arg(ap, long);
			else
				sv = va_arg(ap, int);
			if (lng == -1)
				sv = (short)sv;
			else if (lng == -2)
				sv = (signed char)sv;
			v = sv < 0 ? -(unsigned long)sv : (unsigned long)sv;
			put_num(&o, v, sv < 0, 10, 0, NULL, width, prec, flags);
			break;
		case 'u':
		case 'x':
		case 'X':
		case 'o':
			if (lng > 0)
				v = va_arg(ap, unsigned long);
			else
				v = va_arg(ap, unsigned int);
			if (lng == -1)
				v = (unsigned short)v;
			else if (lng == -2)
				v = (unsigned char)v;
			put_num(&o, v, 0, c == 'u' ? 10 : c == 'o' ? 8 : 16, c == 'X', NULL,
				width, prec, flags);
			break;
		case 'p':
			v = (unsigned long)va_arg(ap, void *);
			put_num(&o, v, 0, 16, 0, "0x", width, prec, flags);
			break;
		case 'c': {
			char ch = (char)va_arg(ap, int);

			put_str(&o, &ch, 1, width, flags);
			break;
		}
		case 's': {
			const char *s = va_arg(ap, const char *);

			if (!s)
				s = "(null)";
			put_str(&o, s, (int)strnlen(s, prec < 0 ? (size_t)-1 : (size_t)prec),
				width, flags);
			break;
		}
		case '%':
			put(&o, '%');
			break;
		case '\0':
			/* A lone '%' at the end: print it and stop. */
			put(&o, '%');
			fmt--;
			break;
		default:
			put(&o, '%');
			put(&o, c);
			break;
		}
	}
	if (size)
		buf[o.pos < size ? o.pos : size - 1] = '\0';
	return (int)o.pos;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
