/* The kexec purgatory (our own, after the kexec-tools design of 2011): verify the crash
 * image, save the CPUs' registers into the pre-allocated ELF notes, and enter the kdump
 * kernel at its kdump entry where it lies (crash_base + 0x10010); the kernel's head swaps
 * [0, crash_size) with the crashkernel region. */
/* Position independent: every symbol is local to this image, so no GOT entry (which would
 * hold a link-time address) is ever needed. */
#pragma GCC visibility push(hidden)
#include "libc.h"
#include "lowcore.h"
#include "hypercall.h"
#include "cksm.h"
#include "sha256.h"
#include "kexec.h"
#include "elfnotes.h"

#define OS_INFO_MAGIC 0x4f53494e464f535aUL
#define PAGE_SIZE     4096UL
#define SEGMENT_PROGRESS_STEP (16UL << 10)
/* A trace id of our own (docs/GUEST_ABI.md); kept out of hypercall.h so that no other
 * program's line table moves. */
#define TRACE_SEGMENT_PROGRESS 22

struct purgatory_info purgatory_info = { .magic = PURGATORY_MAGIC };

extern char _text[];
extern char purgatory_verify_failed[];
void purgatory_wait_failed(void) __attribute__((noreturn));

/* --- absolute storage ------------------------------------------------------------------- */

static unsigned long prefix(void)
{
	unsigned int value;

	asm volatile("stpx %0" : "=Q" (value));
	return value;
}

/* Absolute 0-0x1FFF through our prefix area when the caller runs with a prefix. */
static const void *absolute(unsigned long address)
{
	unsigned long p = prefix();

	if (p && address < LOWCORE_SIZE)
		return (const void *)(p + address);
	if (p && address >= p && address < p + LOWCORE_SIZE)
		return (const void *)(address - p);
	return (const void *)address;
}

static unsigned long absolute_u64(unsigned long address)
{
	unsigned long value;

	memcpy(&value, absolute(address), 8);
	return value;
}

/* --- checks ------------------------------------------------------------------------------ */

static void report(unsigned long kind, unsigned long index, int ok, unsigned long value)
{
	hc_trace(TRACE_PURGATORY_CHECK, kind, index, ok, value);
}

/* os_info must be intact, and must vouch for this purgatory with its checksum: the kdump
 * code can only be trusted if the structure that points to it can. */
static int check_os_info(void)
{
	unsigned long address = absolute_u64(LC_OS_INFO);
	const unsigned char *os_info = absolute(address);
	unsigned long magic;
	unsigned int csum, computed, entry_csum, own;
	int ok;

	if (!address || address & (PAGE_SIZE - 1)) {
		report(CHECK_OS_INFO, 0, 0, 0);
		return 0;
	}
	memcpy(&magic, os_info, 8);
	memcpy(&csum, os_info + 8, 4);
	computed = cksm(os_info + 0x0C, PAGE_SIZE - 0x0C, 0);
	ok = magic == OS_INFO_MAGIC && computed == csum;
	report(CHECK_OS_INFO, 0, ok, computed);
	if (!ok)
		return 0;
	memcpy(&entry_csum, os_info + 0x20 + 20 * OS_INFO_PURGATORY + 16, 4);
	own = cksm(_text, purgatory_info.checked_size, 0);
	ok = own == entry_csum;
	report(CHECK_PURGATORY_CKSM, OS_INFO_PURGATORY, ok, own);
	return ok;
}

static unsigned char computed_digest[32];

/* Hash one segment in steps of SEGMENT_PROGRESS_STEP bytes and report each step (and the
 * start), so the operator can watch the digest being computed.  One hypercall per step
 * costs nothing next to the thousands of instructions each 64-byte block takes. */
static void hash_segment(unsigned long index, const unsigned char *start, unsigned long len)
{
	struct sha256_ctx ctx;
	unsigned long done = 0;

	sha256_init(&ctx);
	hc_trace(TRACE_SEGMENT_PROGRESS, index, 0, len, (unsigned long)start);
	while (done < len) {
		unsigned long step = len - done;

		if (step > SEGMENT_PROGRESS_STEP)
			step = SEGMENT_PROGRESS_STEP;
		sha256_update(&ctx, start + done, step);
		done += step;
		hc_trace(TRACE_SEGMENT_PROGRESS, index, done, len, (unsigned long)start);
	}
	sha256_final(&ctx, computed_digest);
}

static int check_segments(void)
{
	int all_ok = 1;

	for (unsigned long i = 0; i < purgatory_info.nr_regions; i++) {
		const struct sha_region *region = &purgatory_info.regions[i];
		int ok;

		hash_segment(i, (const unsigned char *)region->start, region->len);
		ok = !memcmp(computed_digest, region->digest, 32);
		report(CHECK_SEGMENT_SHA256, i, ok, (unsigned long)computed_digest);
		all_ok &= ok;
	}
	return all_ok;
}

static int verify(void)
{
	int ok = check_os_info();

	/* Hash every segment even after a failure, so the operator sees each verdict. */
	return check_segments() && ok;
}

/* --- ELF notes ----------------------------------------------------------------------------- */

static void save_notes(const struct cpu_table *cpus)
{
	unsigned char *header = (unsigned char *)purgatory_info.elfcorehdr;
	unsigned char *p = header + purgatory_info.notes_offset;
	unsigned long *note_filesz = (unsigned long *)(header + 64 + 32);
	unsigned long count = cpus->count;

	if (count * NOTES_PER_CPU_SIZE > purgatory_info.notes_room)
		count = purgatory_info.notes_room / NOTES_PER_CPU_SIZE;
	for (unsigned long i = 0; i < count; i++) {
		unsigned char *note = p;

		p = put_cpu_notes(p, absolute(cpus->prefix[i] + LC_FPREGS_SAVE_AREA), i + 1);
		*note_filesz += p - note;
		hc_trace(TRACE_NOTES_SAVED, i + 1, cpus->prefix[i], (unsigned long)note, p - note);
	}
}

/* --- entering the kdump kernel ------------------------------------------------------------ */

/* Jump to the kdump kernel's entry where kexec put it (crash_base + 0x10010), memory not yet
 * swapped: its head swaps [0, crash_size) with the crashkernel region itself, as Linux's
 * head_kdump does. OLDMEM_BASE/SIZE are in its parm area since kexec loaded it. */
static void enter_kdump(void) __attribute__((noreturn));
static void enter_kdump(void)
{
	unsigned long entry = purgatory_info.crash_base + purgatory_info.kernel_entry;

	hc_trace(TRACE_ENTER_KDUMP, entry, purgatory_info.crash_base, purgatory_info.crash_size, 0);
	asm volatile("br %0" : : "a" (entry) : "memory");
	__builtin_unreachable();
}

/* --- entry ----------------------------------------------------------------------------------- */

long purgatory_main(long mode, const struct cpu_table *cpus)
{
	int ok;

	hc_trace(TRACE_PURGATORY_ENTER, mode, (unsigned long)_text, 0, 0);
	ok = purgatory_info.magic == PURGATORY_MAGIC && verify();
	hc_trace(TRACE_PURGATORY_RESULT, mode, ok ? PURGATORY_OK : PURGATORY_BAD, 0, 0);
	if (mode == 0)
		return ok ? PURGATORY_OK : PURGATORY_BAD;
	if (!ok) {
		*(volatile unsigned long *)(purgatory_verify_failed + 16) =
			(unsigned long)purgatory_verify_failed;
		purgatory_wait_failed();
	}
	save_notes(cpus);
	enter_kdump();
}

void purgatory_wait_failed(void)
{
	asm volatile("j purgatory_verify_failed");
	__builtin_unreachable();
}
