/* SPDX-License-Identifier: BSD-2-Clause */
/* main.c - the main() of a filter command, built once per filter with
 * -DMIG_FILTER_NAME=name (see the Makefile). */
#include "mig.h"

extern const struct mig_filter MIG_FILTER_SYMBOL(MIG_FILTER_NAME);

int main(int argc, char **argv)
{
	/* before anything is opened: see channel/stdfds.c */
	if (mig_stdfds_ensure(NULL) < 0)
		return MIG_EXIT_SYS;
	return mig_filter_main(&MIG_FILTER_SYMBOL(MIG_FILTER_NAME), argc, argv);
}
