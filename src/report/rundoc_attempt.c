/* rundoc_attempt.c: an attempt of a recorded run in its run document (see
 * rundoc_store.c): outcome, process, HTTP and AI details, outputs, and the
 * ends of its log files (at most tail_bytes each, one pread from the end).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report/rundoc_int.h"
#include "util/text.h"

/* ---- output tails ------------------------------------------------------------- */

/* The last bytes of path (at most b->tail), from the first character that
 * starts in them; *size the file's size. */
static int read_tail(struct build *b, const char *path, uint64_t *size, const char **out,
		     size_t *len)
{
	struct stat sb;
	*out = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	*size = (uint64_t)sb.st_size;
	uint64_t from = *size > b->tail ? *size - b->tail : 0;
	size_t n = (size_t)(*size - from), got = 0;
	while (got < n) {
		ssize_t k = pread(fd, b->rbuf + got, n - got, (off_t)(from + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	size_t skip = 0;
	/* cut inside a character: its continuation bytes (at most 3) go */
	while (from && skip < 3 && skip < got && ((unsigned char)b->rbuf[skip] & 0xc0) == 0x80)
		skip++;
	*out = b->rbuf + skip;
	*len = got - skip;
	return 0;
}

static json_t *stream(struct build *b, const struct store_attempt_info *a,
		      const struct store_log_files *lf, int st)
{
	uint64_t counted = st == STORE_STDOUT ? a->out_bytes : a->err_bytes;
	uint64_t logged = st == STORE_STDOUT ? a->out_logged : a->err_logged;
	uint64_t cut = st == STORE_STDOUT ? a->out_log_cut : a->err_log_cut;
	uint64_t size = 0;
	const char *tail = NULL;
	size_t len = 0;
	if (lf && lf->path[st] && read_tail(b, lf->path[st], &size, &tail, &len) < 0) {
		b->unread++;
		tail = NULL;
		len = 0;
	}
	uint64_t bytes = a->ended ? counted : size;
	if (bytes < logged + cut)
		bytes = logged + cut;
	if (bytes < size)
		bytes = size;
	if (!bytes)
		return json_null();
	json_t *o = json_object();
	if (!o)
		return NULL;
	buf_reset(&b->tmp);
	int e = text_utf8_clean(&b->tmp, tail ? tail : "", len) < 0;
	if (!e && cut)
		e = buf_printf(&b->tmp, "%s[dagrun: the log kept the first %llu bytes of this "
			       "stream; the last %llu were not kept (the log's cap)]\n",
			       b->tmp.len && b->tmp.data[b->tmp.len - 1] != '\n' ? "\n" : "",
			       (unsigned long long)logged, (unsigned long long)cut) < 0;
	if (!e)
		e |= rd_set(o, "tail", json_stringn_nocheck(b->tmp.data ? b->tmp.data : "",
							   b->tmp.len));
	e |= rd_set(o, "bytes", rd_juint(bytes));
	e |= rd_set(o, "truncated", json_boolean(len < bytes));
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- attempts ---------------------------------------------------------------- */

static const char *attempt_status(const struct build *b, const struct store_attempt_info *a)
{
	if (!a->ended)
		return b->interrupted || (a->flags & STORE_ATTEMPT_INTERRUPTED) ? "interrupted" :
		       "running";
	if (a->flags & STORE_ATTEMPT_OK)
		return "completed";
	if (a->flags & STORE_ATTEMPT_INTERRUPTED)
		return "interrupted";
	if (a->flags & STORE_ATTEMPT_CANCELLED)
		return "cancelled";
	return "failed";
}

static int http_ai(json_t *o, struct build *b, const struct store_attempt_info *a)
{
	int e = 0;
	if (a->http_status || a->http_total_us || a->http_queue_us || a->http_redirects) {
		json_t *h = json_pack("{s:i, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I}}",
				      "status", a->http_status,
				      "redirects", (json_int_t)a->http_redirects,
				      "timings",
				      "queueUs", (json_int_t)a->http_queue_us,
				      "dnsUs", (json_int_t)a->http_dns_us,
				      "connectUs", (json_int_t)a->http_connect_us,
				      "tlsUs", (json_int_t)a->http_tls_us,
				      "firstByteUs", (json_int_t)a->http_first_byte_us,
				      "totalUs", (json_int_t)a->http_total_us);
		e |= rd_set(o, "http", h);
	}
	if (a->model) {
		json_t *ai = json_object(), *usage = json_object();
		e |= !ai || !usage;
		if (ai && usage) {
			e |= rd_set(usage, "promptTokens", a->prompt_tokens >= 0 ?
				 json_integer(a->prompt_tokens) : json_null());
			e |= rd_set(usage, "completionTokens", a->completion_tokens >= 0 ?
				 json_integer(a->completion_tokens) : json_null());
			e |= rd_set(ai, "model", rd_jtext(b, a->model));
			e |= rd_set(ai, "finishReason", rd_jtext(b, a->finish_reason));
			e |= rd_set(ai, "usage", usage);
			usage = NULL;
			e |= rd_set(ai, "promptBytes", rd_juint(a->prompt_bytes));
			e |= rd_set(ai, "contextCutBytes", rd_juint(a->context_cut_bytes));
			e |= rd_set(o, "ai", ai);
			ai = NULL;
		}
		json_decref(ai);
		json_decref(usage);
	}
	return e;
}

static int outputs(json_t *o, struct build *b, const struct store_attempt_info *a)
{
	bool any = !b->o->no_outputs && (!a->ended || a->out_bytes || a->err_bytes || a->out_logged ||
		   a->err_logged || a->out_log_cut || a->err_log_cut);
	if (!any)
		return 0;
	struct store_log_files lf;
	char *qerr = NULL;
	int r = b->s->ops->log_files(b->s, a->run, a->stored_task, a->attempt, &b->mem, &lf,
				     &qerr);
	if (r == -ENOMEM) {
		free(qerr);
		return rd_oom(b);
	}
	if (r < 0) {
		b->unread++;
		free(qerr);
		return 0;
	}
	int e = 0;
	for (int st = STORE_STDOUT; st <= STORE_STDERR && !e; st++) {
		json_t *v = stream(b, a, &lf, st);
		if (!v)
			return rd_oom(b);
		if (json_is_null(v))
			json_decref(v);
		else
			e |= rd_set(o, st == STORE_STDOUT ? "stdout" : "stderr", v);
	}
	return e ? rd_oom(b) : 0;
}

json_t *rd_attempt(struct build *b, const struct store_attempt_info *a)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	bool ended = a->ended;
	int e = 0;
	e |= rd_set(o, "attempt", json_integer(a->attempt));
	e |= rd_set(o, "status", json_string(attempt_status(b, a)));
	if (a->ready_ms)
		e |= rd_set(o, "readyMs", rd_jtime(a->ready_ms));
	e |= rd_set(o, "startMs", rd_jtime(a->start_ms));
	e |= rd_set(o, "endMs", ended ? rd_jtime(a->end_ms) : json_null());
	if (ended) {
		e |= rd_set(o, "durationMs", rd_juint(a->duration_ms));
		e |= rd_set(o, "exitCode", a->exit_code >= 0 ? json_integer(a->exit_code) :
			 json_null());
		e |= rd_set(o, "signal", a->signal ? json_integer(a->signal) : json_null());
		if (a->flags & STORE_ATTEMPT_TIMED_OUT)
			e |= rd_set(o, "timedOut", json_true());
		if (a->flags & STORE_ATTEMPT_CACHED)   /* README "Cache" */
			e |= rd_set(o, "cached", json_true());
		bool ok = a->flags & STORE_ATTEMPT_OK;
		e |= rd_set(o, "errorClass", rd_jclass(ok ? 0 : a->error_class));
		e |= rd_set(o, "error", rd_jtext(b, a->error));
		e |= rd_set(o, "cpuUserMs", rd_juint(a->cpu_user_ms));
		e |= rd_set(o, "cpuSysMs", rd_juint(a->cpu_sys_ms));
		e |= rd_set(o, "maxRssKb", json_integer(a->max_rss_kb > 0 ? a->max_rss_kb : 0));
		e |= http_ai(o, b, a);
	}
	if (!e && outputs(o, b, a) < 0)
		e = 1;
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}
