/* header.h - the layer header (private to the channel library). */
#ifndef MIG_HEADER_H
#define MIG_HEADER_H

#include "mig.h"

#define MIG_HEADER_MAX (MIG_HEADER_FIXED + MIG_PARAMS_MAX + MIG_HEADER_CHECK)

/* Writes the header into out (MIG_HEADER_MAX bytes); returns its length. */
size_t mig_header_build(uint8_t *out, uint8_t kind, const uint8_t *params,
			size_t plen);
/* Reads and checks a header of the wanted kind; params must hold
 * MIG_PARAMS_MAX bytes. A different input is reported as what it is. */
int mig_header_read(struct mig_src *in, uint8_t want_kind, uint8_t *params,
		    size_t *plen, struct mig_err *e);

/* "a" or "an" before a kind's name: "an encrypt layer". */
static inline const char *mig_article(const char *word)
{
	return word[0] == 'a' || word[0] == 'e' || word[0] == 'i' ||
			       word[0] == 'o' || word[0] == 'u'
		       ? "an"
		       : "a";
}

#endif
