/* flow.h: data flow between tasks during a run: task results, templates,
 * conditions, `when`, variables and secrets (redaction).
 *
 * The scheduler asks; flow answers from one expression engine per run.
 * Invariants:
 *  - every template and expression is parsed and compiled at most once per
 *    run (a cache keyed by the model's dr_text), then only evaluated;
 *  - a task's result is kept only when something can read it later (a
 *    `tasks.<id>` reference, or a condition on one of its dependents), and
 *    its captured output is stored already redacted;
 *  - every secret read by an expression, named as `secrets.X` anywhere in
 *    the workflow, or given in the secrets file, is in the redactor before
 *    the first task starts or before the value can reach any output;
 *  - everything another task can read of a result (output, json, outputs,
 *    http.headers, error.message) is masked, and a cut (the output cap,
 *    the capture cap) never leaves a piece of a secret at its edge;
 *  - what flow skips or cannot mask (a bad $DAGRUN_OUTPUT line, a secret
 *    too short to mask) is said through the warning callback, never
 *    dropped silently.
 */
#ifndef DAGRUN_FLOW_H
#define DAGRUN_FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "dagrun.h"
#include "exec/executor.h"
#include "model/model.h"
#include "util/buf.h"

struct redactor;

struct flow;

struct flow_opts {
	const char *const *vars;     /* "K=V" overrides, NULL-terminated, or NULL */
	const char *secrets_file;    /* KEY=VALUE lines, or NULL */
	const char *run_id;
	const char *trigger_json;    /* trigger.body as JSON text, or NULL */
};

/* Sets up data flow for wf: checks --var names against `variables`, reads
 * the secrets file (refused when others may read it), registers secrets.
 * Returns 0, -EINVAL (reason in diags), or -errno. */
int flow_new(struct flow **out, const struct dagrun_workflow *wf,
	     const struct flow_opts *o, dagrun_diags *diags);
void flow_free(struct flow *f);

/* Sets up data flow for a sub-run of wf (a `workflow` task's) in the run
 * of parent: secrets (the redactor and the secrets file) are the
 * parent's, shared, so that what either masks the other masks too; with
 * (a map of rendered values, or NULL) overrides wf's declared variables,
 * as --var does. parent must outlive the child. Returns 0, -EINVAL (an
 * undeclared variable, in diags) or -ENOMEM. */
int flow_new_child(struct flow **out, const struct dagrun_workflow *wf, struct flow *parent,
		   const struct dr_value *with, dagrun_diags *diags);

/* Renders wf's `outputs` (what a sub-run gives back) into out, which the
 * caller zero-initialised and frees (expr_outputs_free). Returns 0, or < 0
 * with *err (malloc'd, FILE:LINE:COL: ...) for a template that fails. */
struct expr_outputs;
int flow_outputs(struct flow *f, struct expr_outputs *out, char **err);

/* Receives a warning (a DAGRUN_EV_LOG at WARN level): t is the task it is
 * about, or UINT32_MAX. msg is borrowed for the call. */
typedef void (*flow_warn_fn)(void *ud, uint32_t t, const char *msg);

/* Sets where warnings go. Those raised before (by flow_new: the secrets
 * file, secrets too short to mask) are delivered now, in order. */
void flow_set_warn(struct flow *f, flow_warn_fn fn, void *ud);

/* True when the run has secrets to redact. */
bool flow_redacting(const struct flow *f);

/* Appends text[0 .. len) to out with secrets masked. Returns 0 or -errno. */
int flow_redact(const struct flow *f, const char *text, size_t len, struct buf *out);

/* Appends text[start .. end) masked as it reads inside text[0 .. len); cut:
 * enum redact_cut flags, the bytes lost around text (see redact_slice).
 * Returns 0 or -errno. */
int flow_redact_slice(const struct flow *f, const char *text, size_t len, size_t start,
		      size_t end, int cut, struct buf *out);

/* The run's redactor (borrowed; it lives as long as f and may gain secrets
 * during the run), or NULL when f is NULL. Executors use it to mask what
 * they cut and to keep secret headers from other origins. */
const struct redactor *flow_redactor(const struct flow *f);

/* A streaming redactor for one output stream of one attempt (see redact.h);
 * NULL when nothing needs redacting. Free with flow_stream_free. */
struct redact_stream *flow_stream_new(const struct flow *f);
void flow_stream_free(struct redact_stream *s);

/* Records t's final outcome: status, attempts, the last attempt's result
 * (may be NULL: never ran), its class and message. Reads t's
 * $DAGRUN_OUTPUT file (output_file, may be NULL; what it skips is warned
 * about). Keeps what later expressions may read, masked. Returns 0, or
 * -errno (the result is then partial). */
int flow_record(struct flow *f, uint32_t t, int status, uint32_t attempts,
		uint64_t duration_ms, int error_class, const char *error,
		const struct exec_result *r, const char *output_file);

/* Whether something can read t's result later (a `tasks.<id>` reference,
 * a condition on one of its dependents): only then is it kept, recorded
 * and seeded. */
bool flow_keeps(const struct flow *f, uint32_t t);

/* Appends t's recorded result (masked, as later expressions read it) as
 * JSON to out; nothing when none is kept. Returns 0 or -ENOMEM. */
int flow_result_json(const struct flow *f, uint32_t t, struct buf *out);

/* Seeds t's result from JSON written by flow_result_json (a task kept
 * from an earlier run: resume, rerun). Nothing when t's result is not
 * kept. Returns 0, -EINVAL (not such JSON) or -ENOMEM. */
int flow_seed(struct flow *f, uint32_t t, const char *json, size_t len);

/* Appends the run's variables (after --var) as a JSON object, every
 * string masked, to out. Returns 0 or -errno. */
int flow_vars_json(const struct flow *f, const struct dagrun_workflow *wf, struct buf *out);

/* The run's trigger.body as the JSON text it was given (what the run
 * records), or NULL: the run was not started by a webhook. */
const char *flow_trigger_json(const struct flow *f);

/* Evaluates the condition on dependency edge `dep` (its target's result is
 * recorded). *out: whether the dependent may run. Returns 0, or < 0 with
 * *err (malloc'd, FILE:LINE:COL: ...). */
int flow_condition(struct flow *f, const struct dr_dep *dep, bool *out, char **err);

/* Evaluates t's `when` (true when it has none). As flow_condition. */
int flow_when(struct flow *f, uint32_t t, bool *out, char **err);

/* Renders template text for an attempt of task t. mode: enum
 * exec_render_mode; context: an AI task's rendered context (context.<k>),
 * or NULL. Appends to out. Returns 0 or < 0 with *err. */
struct expr_kv;
int flow_render(struct flow *f, uint32_t t, const struct dr_text *text, int mode,
		const struct expr_kv *context, size_t n_context, struct buf *out, char **err);

#endif
