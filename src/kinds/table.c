/* table.c: the one table of task kinds, and lookups over it.
 *
 * A kind is one file of this folder defining a `const struct kind` (see
 * kind.h) and one line below. The order is the order tasks index them
 * (dr_task.kind) and the loader offers their keys: the most frequent kind
 * first.
 */
#include "kinds/kind.h"

#define KINDS(X)          \
	X(kind_command)   \
	X(kind_script)    \
	X(kind_api)       \
	X(kind_webhook)   \
	X(kind_ai)        \
	X(kind_workflow)

#define DECLARE(k) extern const struct kind k;
KINDS(DECLARE)

#define ENTRY(k) &k,
static const struct kind *const table[] = {KINDS(ENTRY)};

const struct kind *const *kinds_table(unsigned *n)
{
	*n = sizeof(table) / sizeof(table[0]);
	return table;
}

const struct ext_def *kinds_ext(int type)
{
	for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++)
		for (int i = 0; i < KIND_MAX_EXT && table[k]->ext[i]; i++)
			if (table[k]->ext[i]->type == type)
				return table[k]->ext[i];
	return NULL;
}

int kinds_ext_json(const struct dagrun_ext *x, json_t *o)
{
	for (; x; x = x->next) {
		const struct ext_def *d = kinds_ext(x->type);
		int r = d ? d->json(x, o) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}
