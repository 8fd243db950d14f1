/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cpu.c - the machine's spare CPU, for encoders that trade CPU for ratio.
 *
 * A full output pipe says the stages after an encoder are slower than it,
 * not why: a slow link (CPU spent on ratio is time won on the wire) or
 * stages starved of CPU (CPU spent on ratio is taken from them). On two
 * cores shared by both ends of a pipeline and the emulators, zstd-long
 * climbing on back-pressure alone went from level 1 to 9 and made a
 * migration 2.5 times slower for the same bytes. The idle time the kernel
 * counts tells the two apart.
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "mig.h"

/* /proc/stat's first line: the jiffies of all CPUs together, by state.
 * Idle and iowait are spare; steal (another guest's) is not. */
static int read_cpu_times(unsigned long long *idle, unsigned long long *total)
{
	char buf[256];
	unsigned long long v[8] = { 0 };
	int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 4)
		return -1;
	*idle = v[3] + v[4];
	*total = 0;
	for (int i = 0; i < 8; i++)
		*total += v[i];
	return 0;
}

double mig_spare_cpus(struct mig_cpu_mark *m)
{
	unsigned long long idle, total;
	double spare = -1;

	if (read_cpu_times(&idle, &total) < 0) {
		m->valid = false;
		return -1;
	}
	if (m->valid && total > m->total && idle >= m->idle)
		spare = (double)(idle - m->idle) / (double)(total - m->total) *
			mig_cpus();
	m->idle = idle;
	m->total = total;
	m->valid = true;
	return spare;
}
