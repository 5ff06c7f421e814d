/* result.c: what every executor's result owns. */
#include "exec/executor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void exec_result_free(struct exec_result *r)
{
	if (!r)
		return;
	free(r->error);
	r->error = NULL;
	buf_free(&r->out);
	buf_free(&r->err);
	json_decref(r->http_headers);
	r->http_headers = NULL;
	free(r->model);
	free(r->finish_reason);
	r->model = r->finish_reason = NULL;
}

int exec_render(struct exec_attempt *a, const struct dr_text *t,
		int mode, struct buf *out, char **err)
{
	*err = NULL;
	if (!t->s)
		return 0;
	if (a->render)
		return a->render(a, t, (enum exec_render_mode)mode, out, err);
	int r = buf_add(out, t->s, t->len);
	if (r < 0)
		*err = strdup(r == -E2BIG ? "value too large" : "out of memory");
	return r;
}
