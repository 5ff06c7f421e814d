/* redact_stream.c: masking an output stream chunk by chunk; see redact.h
 * for its invariant.
 *
 * The hold keeps up to REDACT_STREAM_CONTEXT bytes already emitted (ctx),
 * then the bytes not yet known final. Each step searches the whole hold and
 * emits all but its last redact_max_len() - 1 bytes, which a later chunk
 * may still complete into a secret; a mask that reached past what was
 * emitted is remembered (covered), so its bytes are not emitted later.
 */
#include "expr/redact_int.h"

#include <stdlib.h>
#include <string.h>

void redact_stream_init(struct redact_stream *s, const struct redactor *r)
{
	s->r = r;
	s->hold = (struct buf)BUF_INIT;
	s->ctx = 0;
	s->covered = 0;
}

/* Emits what is known final: all of it when last. The hold then keeps up
 * to REDACT_STREAM_CONTEXT emitted bytes before what is withheld, so an
 * escape that began before a chunk's end still decodes as it will in the
 * whole text. */
static int stream_step(struct redact_stream *s, struct buf *out, bool last, bool cut)
{
	size_t keep = s->r && s->r->max_len ? s->r->max_len - 1 : 0;
	size_t len = s->hold.len, ctx = s->ctx;
	size_t safe = last ? len : len - ctx > keep ? len - keep : ctx;
	if (safe == ctx && !last)
		return 0;
	const char *d = s->hold.data ? s->hold.data : "";
	struct runs rs = {NULL, 0, 0};
	size_t past = 0;
	int rc = 0;
	if (s->covered)
		rc = redact_run_add(&rs, ctx, ctx + s->covered);
	if (rc == 0 && s->r && s->r->n)
		rc = redact_find(s->r, d, len, 0, &rs);
	if (rc == 0 && cut && s->r && s->r->n && len)
		rc = redact_edges(s->r, d, len, REDACT_CUT_TAIL, &rs);
	if (rc == 0) {
		redact_runs_merge(&rs);
		rc = redact_emit(&rs, d, ctx, safe, s->covered > 0, out, &past);
	}
	free(rs.v);
	if (rc < 0)
		return rc;
	size_t nctx = safe < REDACT_STREAM_CONTEXT ? safe : REDACT_STREAM_CONTEXT;
	memmove(s->hold.data, s->hold.data + safe - nctx, len - safe + nctx);
	s->hold.len = len - safe + nctx;
	s->hold.data[s->hold.len] = '\0';
	s->ctx = nctx;
	s->covered = past;
	return 0;
}

int redact_stream_feed(struct redact_stream *s, const char *data, size_t len,
		       struct buf *out)
{
	int rc = buf_add(&s->hold, data, len);
	return rc < 0 ? rc : stream_step(s, out, false, false);
}

static int flush(struct redact_stream *s, struct buf *out, bool cut)
{
	int rc = 0;
	if (s->hold.len > s->ctx)
		rc = stream_step(s, out, true, cut);
	buf_reset(&s->hold);
	s->ctx = 0;
	s->covered = 0;
	return rc;
}

int redact_stream_flush(struct redact_stream *s, struct buf *out)
{
	return flush(s, out, false);
}

int redact_stream_flush_cut(struct redact_stream *s, struct buf *out)
{
	return flush(s, out, true);
}

void redact_stream_free(struct redact_stream *s)
{
	if (!s)
		return;
	buf_free(&s->hold);
	s->ctx = 0;
	s->covered = 0;
}
