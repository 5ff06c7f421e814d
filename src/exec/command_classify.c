/* command_classify.c: how a command or script attempt ended, as a class
 * and a message (command_classify(), see command.h for the rules).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/command_int.h"
#include "util/buf.h"

/* ---- classification ------------------------------------------------------ */

static void fail(struct exec_result *r, enum dr_error_class c, char *text)
{
	r->ok = false;
	r->error_class = (uint8_t)c;
	free(r->error);
	r->error = text;
}

static bool permanent_code(const struct dr_retry *rt, int code)
{
	if (code == 126 || code == 127)
		return true;
	for (unsigned i = 0; rt && i < rt->n_permanent; i++)
		if (rt->permanent_codes[i] == code)
			return true;
	return false;
}

static void classify_spawn(struct exec_result *r, const struct command_outcome *o)
{
	int e = o->spawn_err;
	const char *prog = o->program ? o->program : "?";
	r->exit_code = -1;
	if (o->workdir_err) {
		fail(r, DR_CLASS_PERMANENT, buf_strf("workdir %s: %s", o->workdir ? o->workdir : "?",
						strerror(o->workdir_err)));
		return;
	}
	switch (e) {
	case EAGAIN: case ENOMEM: case EMFILE: case ENFILE:
		fail(r, DR_CLASS_RESOURCE, buf_strf("cannot start %s: %s", prog, strerror(e)));
		return;
	case ENOENT: case ENOTDIR:
		r->exit_code = 127;
		fail(r, DR_CLASS_PERMANENT, buf_strf("command not found: %s", prog));
		return;
	case EACCES: case EPERM: case ENOEXEC: case EISDIR:
		r->exit_code = 126;
		fail(r, DR_CLASS_PERMANENT, buf_strf("cannot execute %s: %s", prog, strerror(e)));
		return;
	case ETXTBSY: case EINTR: case EIO:
		fail(r, DR_CLASS_TRANSIENT, buf_strf("cannot start %s: %s", prog, strerror(e)));
		return;
	default:
		fail(r, DR_CLASS_PERMANENT, buf_strf("cannot start %s: %s", prog, strerror(e)));
	}
}

static char *duration_text(uint64_t ms)
{
	if (ms && ms % 1000 == 0)
		return buf_strf("%" PRIu64 "s", ms / 1000);
	return buf_strf("%" PRIu64 "ms", ms);
}

void command_classify(struct exec_result *r, const struct command_outcome *o)
{
	if (o->template_err) {
		r->exit_code = -1;
		fail(r, DR_CLASS_PERMANENT, strdup(o->template_err));
		return;
	}
	r->ok = false;
	r->error_class = DR_CLASS_NONE;
	free(r->error);
	r->error = NULL;
	if (r->cancelled) {
		fail(r, DR_CLASS_TRANSIENT, buf_strf("cancelled"));
	} else if (r->timed_out) {
		char *d = duration_text(o->timeout_ms);
		fail(r, DR_CLASS_TRANSIENT, d ? buf_strf("timed out after %s", d) : NULL);
		free(d);
	} else if (o->script_err) {
		int e = o->script_err;
		bool res = e == ENOSPC || e == EDQUOT || e == EMFILE || e == ENFILE || e == EAGAIN;
		r->exit_code = -1;
		fail(r, res ? DR_CLASS_RESOURCE : DR_CLASS_PERMANENT,
		     buf_strf("cannot write the script to a temporary file: %s", strerror(e)));
	} else if (o->spawn_err) {
		classify_spawn(r, o);
	} else if (r->term_signal) {
		int s = r->term_signal;
		const char *name = sigabbrev_np(s);
		bool limit = (s == SIGKILL && !o->signalled) || s == SIGXCPU || s == SIGXFSZ;
		fail(r, limit ? DR_CLASS_RESOURCE : DR_CLASS_TRANSIENT,
		     buf_strf("killed by signal %d (SIG%s)%s", s, name ? name : "?",
			 limit ? ": likely the OOM killer or a resource limit" : ""));
	} else if (r->exit_code == 0) {
		r->ok = true;
	} else {
		fail(r, permanent_code(o->retry, r->exit_code) ? DR_CLASS_PERMANENT
							       : DR_CLASS_TRANSIENT,
		     buf_strf("exit code %d", r->exit_code));
	}
}
