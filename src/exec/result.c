/* result.c: what every executor's result owns. */
#include "exec/executor.h"

#include <stdlib.h>

void exec_result_free(struct exec_result *r)
{
	if (!r)
		return;
	free(r->error);
	r->error = NULL;
	buf_free(&r->out);
	buf_free(&r->err);
}
