/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * guest-dirty FILE PASS BYTES: the test guest's sparse writer
 * (scripts/guest-init, mig.dirtypattern=sparse). In every 4 KiB page of
 * FILE it overwrites BYTES bytes with fresh random ones, at an offset
 * that moves with the page and with PASS (the times the guest went over
 * its region), as a program updating records, counters and links in
 * place dirties its memory: every page changes, in a few places.
 * Built static by scripts/make-guest (the initramfs has no libc).
 * Exit status: 0 done, 1 an I/O error, 2 usage.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096

static uint64_t state;

/* xorshift64*: fresh bytes without a read of /dev/urandom per page */
static uint8_t next_byte(void)
{
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return (uint8_t)((state * 0x2545f4914f6cdd1dull) >> 56);
}

/* A seed from the kernel: each run writes bytes no earlier one did. */
static int seed(void)
{
	int fd = open("/dev/urandom", O_RDONLY);
	int ok = fd >= 0 && read(fd, &state, sizeof state) == sizeof state;

	if (fd >= 0)
		close(fd);
	state |= 1;
	return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	uint8_t buf[PAGE];
	struct stat st;
	char *end;
	int fd;

	if (argc != 4)
		return fprintf(stderr, "usage: guest-dirty FILE PASS BYTES\n"), 2;
	unsigned long pass = strtoul(argv[2], &end, 10);
	if (*end || !*argv[2])
		return fprintf(stderr, "guest-dirty: PASS: a whole number\n"), 2;
	unsigned long bytes = strtoul(argv[3], &end, 10);
	if (*end || bytes == 0 || bytes >= PAGE)
		return fprintf(stderr, "guest-dirty: BYTES: 1 to %d\n", PAGE - 1), 2;
	if (seed() < 0)
		return perror("/dev/urandom"), 1;
	if ((fd = open(argv[1], O_WRONLY)) < 0 || fstat(fd, &st) < 0)
		return perror(argv[1]), 1;
	for (off_t p = 0; p + PAGE <= st.st_size; p += PAGE) {
		unsigned long at = (pass * 7919 + (unsigned long)(p / PAGE) * 61) %
				   (PAGE - bytes);
		for (unsigned long i = 0; i < bytes; i++)
			buf[i] = next_byte();
		if (pwrite(fd, buf, bytes, p + (off_t)at) != (ssize_t)bytes)
			return perror(argv[1]), 1;
	}
	return close(fd) < 0 ? (perror(argv[1]), 1) : 0;
}
