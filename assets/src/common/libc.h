/* A tiny freestanding C library, linked into every DumpLab guest program.
 *
 * The standard names matter: gcc itself may emit calls to memset/memcpy/memmove/memcmp.
 *
 * snprintf/vsnprintf understand %s %c %d %i %u %x %X %o %p %% with the flags '0' and '-', a
 * width and a precision (both may be '*'), and the length modifiers h, hh, l, ll and z.
 * %p prints "0x" and the address in lowercase hex.  The return value is the length the full
 * output would have had (C99), the buffer is always NUL-terminated when size > 0.
 */
#ifndef DUMPLAB_LIBC_H
#define DUMPLAB_LIBC_H

#include <stdarg.h>
#include <stddef.h>

/* From the compiler, not <limits.h>: the build uses only gcc's own freestanding headers. */
#define ULONG_MAX (__LONG_MAX__ * 2UL + 1UL)

void *memset(void *s, int c, size_t n);
void *memcpy(void *__restrict dst, const void *__restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);

/* Standard strtoul: leading blanks, an optional sign, base 0 (0x.. hex, 0.. octal, else
 * decimal) or 2..36 (base 16 accepts a 0x prefix).  Saturates at ULONG_MAX on overflow.
 * *end (if end is not NULL) points after the last digit used, or at s when there was none. */
unsigned long strtoul(const char *s, char **end, int base);

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
