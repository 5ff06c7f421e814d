/* test_pipe.c: large files, which dagrun_workflow_load() parses in a
 * thread of its own (src/load/pipe.c): the model, the diagnostics and
 * their positions must be exactly those of dagrun_workflow_load_buffer(),
 * which parses in the calling thread, and a load that stops early must
 * stop the parsing thread at once (the suite's sanitizer builds check
 * that nothing leaks). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graph/graph.h"
#include "exec/command.h"
#include "model/model.h"
#include "load/pipe.h"
#include "util/diag.h"

/* Past the loader's threshold for a parsing thread (1 MiB). */
#define BIG ((size_t)3 << 20)

/* ---- generating files ----------------------------------------------------------- */

struct text {
	char *s;
	size_t len, cap;
	unsigned lines;          /* complete lines so far */
};

static void add(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if ((size_t)n < t->cap - t->len) {
			for (int i = 0; i < n; i++)
				t->lines += t->s[t->len + (size_t)i] == '\n';
			t->len += (size_t)n;
			return;
		}
		t->cap = t->cap ? t->cap * 2 : 1 << 16;
		t->s = realloc(t->s, t->cap);
		assert_non_null(t->s);
	}
}

/* Task i in one of several shapes: dependencies in both styles and as
 * maps, every kind, options, a long scalar (kept in libyaml's memory by
 * the pipe), an anchor and a tag (events that keep their allocations). */
static void add_task(struct text *t, unsigned i)
{
	add(t, "  - id: t%u\n", i);
	switch (i % 8) {
	case 0:
		add(t, "    command: \"echo %u\"\n", i);
		break;
	case 1:
		if (i > 8)
			add(t, "    command: true\n    dependencies: [t%u, t%u]\n", i - 1, i / 2);
		else
			add(t, "    command: true\n    dependencies: [t%u]\n", i - 1);
		break;
	case 2:
		add(t, "    command: x\n    dependencies:\n      - t%u\n"
		       "      - {taskId: t%u, type: non-blocking}\n", i - 2, i - 1);
		break;
	case 3:
		add(t, "    command: [sh, -c, \"exit %u\"]\n    priority: %u\n", i % 3, i % 7);
		break;
	case 4:
		add(t, "    script: |\n      echo a %u\n      echo b\n    timeout: 5m\n", i);
		break;
	case 5:
		add(t, "    command: \"");
		for (unsigned k = 0; k < 150 + i % 1100; k++)
			add(t, "%c", 'a' + (char)(k % 26));
		add(t, "\"\n    dependencies: [t%u]\n", i - 5);
		break;
	case 6:
		add(t, "    description: &d%u some text\n    command: !!str tagged\n", i);
		break;
	default:
		add(t, "    env: {A: \"1\", B: two}\n    retry: {maxAttempts: 3, jitter: none}\n"
		       "    command: env\n");
		break;
	}
}

static void add_head(struct text *t)
{
	add(t, "name: big\ndescription: a large file\nmaxParallel: 8\n"
	       "resources: {cpu: 4}\ndefaults: {timeout: 1h, resources: {cpu: 1}}\n"
	       "tasks:\n");
}

/* A valid workflow of at least `bytes` bytes, with hooks. */
static struct text big_workflow(size_t bytes)
{
	struct text t = {0};
	add_head(&t);
	for (unsigned i = 0; t.len < bytes; i++)
		add_task(&t, i);
	add(&t, "onSuccess:\n  - id: done\n    command: echo done\n");
	return t;
}

static char *write_temp(const struct text *t)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/dagrun-pipe-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, t->s, t->len), (ssize_t)t->len);
	close(fd);
	return path;
}

/* ---- comparing ------------------------------------------------------------------ */

static void same_text(const struct dr_text *a, const struct dr_text *b)
{
	if (!a || !b) {
		assert_ptr_equal(a, b);
		return;
	}
	assert_int_equal(a->len, b->len);
	assert_int_equal(a->line, b->line);
	assert_int_equal(a->col, b->col);
	if (!a->s || !b->s)
		assert_ptr_equal(a->s, b->s);
	else
		assert_memory_equal(a->s, b->s, a->len);
}

static void same_opts(const struct dr_task_opts *a, const struct dr_task_opts *b)
{
	same_text(a->description, b->description);
	same_text(a->when, b->when);
	same_text(a->workdir, b->workdir);
	assert_int_equal(a->env.n, b->env.n);
	for (uint32_t i = 0; i < a->env.n; i++) {
		same_text(&a->env.v[i].key, &b->env.v[i].key);
		same_text(&a->env.v[i].value, &b->env.v[i].value);
	}
	assert_int_equal(a->n_res, b->n_res);
	for (uint32_t i = 0; i < a->n_res; i++)
		assert_memory_equal(&a->res[i], &b->res[i], sizeof(a->res[i]));
	assert_int_equal(a->timeout_ms, b->timeout_ms);
	assert_int_equal(a->kill_grace_ms, b->kill_grace_ms);
	assert_int_equal(a->retry.max_attempts, b->retry.max_attempts);
	assert_true(a->retry.backoff_factor == b->retry.backoff_factor);
	assert_int_equal(a->retry.jitter, b->retry.jitter);
	assert_int_equal(a->retry.retry_on, b->retry.retry_on);
}

static void same_task(const struct dagrun_workflow *a, const struct dagrun_workflow *b,
		      uint32_t i)
{
	const struct dr_task *x = &a->tasks[i], *y = &b->tasks[i];
	assert_string_equal(wf_task_id(a, i), wf_task_id(b, i));
	assert_int_equal(x->line, y->line);
	assert_int_equal(x->col, y->col);
	assert_int_equal(x->dep_first, y->dep_first);
	assert_int_equal(x->dep_count, y->dep_count);
	assert_int_equal(x->priority, y->priority);
	assert_int_equal(x->kind, y->kind);
	assert_int_equal(x->hook, y->hook);
	same_opts(x->opts, y->opts);
	const char *kind = a->kinds[x->kind]->name;
	if (!strcmp(kind, "command")) {
		const struct dr_command *cx = x->spec, *cy = y->spec;
		same_text(&cx->str, &cy->str);
		assert_int_equal(cx->argc, cy->argc);
		for (uint32_t k = 0; k < cx->argc; k++)
			same_text(&cx->argv[k], &cy->argv[k]);
	} else if (!strcmp(kind, "script")) {
		const struct dr_script *sx = x->spec, *sy = y->spec;
		same_text(&sx->body, &sy->body);
		same_text(&sx->interpreter, &sy->interpreter);
		assert_int_equal(sx->posix_shell, sy->posix_shell);
	} else {
		fail_msg("unexpected kind %s", kind);
	}
}

static void same_workflow(const struct dagrun_workflow *a, const struct dagrun_workflow *b)
{
	same_text(&a->name, &b->name);
	same_text(&a->description, &b->description);
	assert_int_equal(a->max_parallel, b->max_parallel);
	assert_int_equal(a->n_pools, b->n_pools);
	for (uint32_t i = 0; i < a->n_pools; i++) {
		assert_string_equal(a->pools[i].name, b->pools[i].name);
		assert_int_equal(a->pools[i].capacity, b->pools[i].capacity);
	}
	assert_int_equal(a->n_tasks, b->n_tasks);
	assert_int_equal(a->n_main, b->n_main);
	assert_memory_equal(a->hook_first, b->hook_first, sizeof(a->hook_first));
	assert_memory_equal(a->hook_count, b->hook_count, sizeof(a->hook_count));
	assert_int_equal(a->ids.count, b->ids.count);
	for (uint32_t i = 0; i < a->n_tasks; i++)
		same_task(a, b, i);
	assert_int_equal(a->n_deps, b->n_deps);
	for (uint64_t i = 0; i < a->n_deps; i++) {
		const struct dr_dep *x = &a->deps[i], *y = &b->deps[i];
		assert_int_equal(x->target, y->target);
		assert_int_equal(x->line, y->line);
		assert_int_equal(x->col, y->col);
		assert_int_equal(x->type, y->type);
		same_text(x->condition, y->condition);
	}
	assert_non_null(a->graph);
	assert_non_null(b->graph);
	assert_int_equal(a->graph->n_edges, b->graph->n_edges);
	assert_memory_equal(a->graph->topo, b->graph->topo, a->n_tasks * sizeof(uint32_t));
	assert_memory_equal(a->graph->weight, b->graph->weight, a->n_tasks * sizeof(uint32_t));
}

static void same_diags(const dagrun_diags *a, const dagrun_diags *b)
{
	assert_int_equal(dagrun_diags_count(a), dagrun_diags_count(b));
	assert_int_equal(dagrun_diags_errors(a), dagrun_diags_errors(b));
	for (size_t i = 0; i < dagrun_diags_count(a); i++) {
		const dagrun_diag *x = dagrun_diags_get(a, i), *y = dagrun_diags_get(b, i);
		assert_int_equal(x->severity, y->severity);
		assert_int_equal(x->line, y->line);
		assert_int_equal(x->column, y->column);
		assert_string_equal(x->message, y->message);
	}
}

/* One load through the file (a parsing thread) and one from memory. */
struct both {
	int rf, rb;
	dagrun_workflow *f, *b;
	dagrun_diags *df, *db;
};

static struct both load_both(const struct text *t, size_t max_diags)
{
	struct both r = {0, 0, NULL, NULL, dagrun_diags_new(max_diags),
			 dagrun_diags_new(max_diags)};
	char *path = write_temp(t);
	r.rf = dagrun_workflow_load(path, &r.f, r.df);
	r.rb = dagrun_workflow_load_buffer(path, t->s, t->len, &r.b, r.db);
	remove(path);
	assert_int_equal(r.rf, r.rb);
	same_diags(r.df, r.db);
	return r;
}

static void both_free(struct both *r)
{
	dagrun_workflow_free(r->f);
	dagrun_workflow_free(r->b);
	dagrun_diags_free(r->df);
	dagrun_diags_free(r->db);
}

/* ---- tests -------------------------------------------------------------------------- */

static void a_large_file_gives_the_model_of_the_same_buffer(void **state)
{
	(void)state;
	struct text t = big_workflow(BIG);
	struct both r = load_both(&t, 0);
	assert_int_equal(r.rf, 0);
	assert_true(r.f->n_tasks > 15000);
	same_workflow(r.f, r.b);
	both_free(&r);
	free(t.s);
}

/* Events libyaml gives for t before it fails. */
static unsigned events_before_error(const struct text *t)
{
	yaml_parser_t p;
	yaml_event_t ev;
	unsigned n = 0;
	assert_true(yaml_parser_initialize(&p));
	yaml_parser_set_input_string(&p, (const unsigned char *)t->s, t->len);
	while (yaml_parser_parse(&p, &ev)) {
		assert_int_not_equal(ev.type, YAML_STREAM_END_EVENT);
		yaml_event_delete(&ev);
		n++;
	}
	yaml_parser_delete(&p);
	return n;
}

/* A file of plain tasks with an error in task 7, and a flow mapping left
 * open after them, holding `pad` dependencies: libyaml reports it where
 * the next line starts. Returns that line. */
static unsigned open_mapping_file(struct text *t, unsigned pad)
{
	t->len = t->lines = 0;
	add(t, "name: big\ntasks:\n");
	for (unsigned i = 0; t->len < BIG / 2; i++) {
		if (i == 7)
			add(t, "  - {id: typo, comand: x}\n");
		add(t, "  - id: t%u\n    command: x\n", i);
	}
	add(t, "  - {id: open, command: x, dependencies: [");
	for (unsigned i = 0; i < pad; i++)
		add(t, "t%u, ", i);
	add(t, "t%u]\n", pad);
	unsigned line = t->lines + 1;
	add(t, "  - id: after\n    command: x\n");
	return line;
}

static void a_syntax_error_deep_in_a_large_file_is_reported_at_its_place(void **state)
{
	(void)state;
	struct text t = {0};
	/* Each dependency is one event more before the failure: make it fall
	 * last in a block of the pipe, first in a new (then empty) one, and
	 * second. */
	open_mapping_file(&t, 0);
	unsigned base = events_before_error(&t);
	for (unsigned at = PIPE_EVENTS - 1; at <= PIPE_EVENTS + 1; at++) {
		unsigned pad = (at - base % PIPE_EVENTS) % PIPE_EVENTS;
		unsigned line = open_mapping_file(&t, pad);
		assert_int_equal(events_before_error(&t) % PIPE_EVENTS, at % PIPE_EVENTS);
		struct both r = load_both(&t, 0);
		assert_int_equal(r.rf, -EINVAL);
		const dagrun_diag *d = dagrun_diags_get(r.df, 0);
		char msg[128];
		snprintf(msg, sizeof(msg), "YAML syntax error: did not find expected ',' or '}' "
			 "(while parsing a flow mapping at line %u)", line - 1);
		assert_string_equal(d->message, msg);
		assert_int_equal(d->line, line);
		assert_int_equal(d->column, 3);
		/* and the error before it, after it once sorted */
		assert_string_equal(dagrun_diags_get(r.df, 1)->message,
				    "unknown key 'comand' in task; did you mean 'command'?");
		both_free(&r);
	}
	free(t.s);
}

static void an_encoding_error_deep_in_a_large_file_is_reported_at_its_place(void **state)
{
	(void)state;
	struct text t = big_workflow(BIG);
	size_t off = t.len / 2;
	while (t.s[off] != '\n')
		off++;
	off += 1 + 4; /* "  - id: t123": in the id's value, line (lines before) + 1 */
	unsigned line = 1;
	for (size_t i = 0; i < off; i++)
		line += t.s[i] == '\n';
	t.s[off + 4] = (char)0xFF;
	struct both r = load_both(&t, 0);
	assert_int_equal(r.rf, -EINVAL);
	const dagrun_diag *d = dagrun_diags_get(r.df, 0);
	char msg[128];
	snprintf(msg, sizeof(msg), "invalid leading UTF-8 octet (byte 0xFF at offset %zu)",
		 off + 4);
	assert_string_equal(d->message, msg);
	assert_int_equal(d->line, line);
	both_free(&r);
	free(t.s);
}

/* A large file whose templates and expressions are checked, in a thread of
 * their own meanwhile the graph is built: the same diagnostics, in the
 * same order, as checked after it; none of them when the graph fails. */
static void template_errors_in_a_large_file_are_reported_in_order(void **state)
{
	(void)state;
	for (int cycle = 0; cycle < 2; cycle++) {
		struct text t = {0};
		add_head(&t);
		for (unsigned i = 0; t.len < BIG; i++) {
			if (i % 5000 == 17)
				add(&t, "  - id: e%u\n    command: \"echo {{ tasks.nope.stdout }}\"\n"
				       "    when: \"1 +\"\n", i);
			add_task(&t, i);
		}
		if (cycle)
			add(&t, "  - {id: x, command: x, dependencies: [y]}\n"
			       "  - {id: y, command: x, dependencies: [x]}\n");
		struct both r = load_both(&t, 0);
		assert_int_equal(r.rf, -EINVAL);
		const dagrun_diag *d = dagrun_diags_get(r.df, 0);
		if (cycle) {
			assert_int_equal(dagrun_diags_count(r.df), 1);
			assert_string_equal(d->message, "dependency cycle: x -> y -> x");
		} else {
			assert_true(dagrun_diags_count(r.df) > 2);
			assert_string_equal(d->message, "unknown task 'nope' in tasks.nope");
			assert_string_equal(dagrun_diags_get(r.df, 1)->message,
					    "invalid expression: unexpected symbol near ')'");
		}
		both_free(&r);
		/* and with a list that fills up */
		r = load_both(&t, 3);
		assert_int_equal(r.rf, -EINVAL);
		assert_int_equal(dagrun_diags_count(r.df), cycle ? 1 : 3);
		both_free(&r);
		free(t.s);
	}
}

/* rchar of /proc/self/io: bytes this process read so far, or 0. */
static uint64_t bytes_read(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	uint64_t n = 0;
	char line[128];
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "rchar: %" SCNu64, &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static void errors_past_the_cap_stop_the_parsing_thread_at_once(void **state)
{
	(void)state;
	struct text t = {0};
	add(&t, "name: big\ntasks:\n");
	for (unsigned i = 0; t.len < 4 * BIG; i++)
		add(&t, "  - {id: t%u, comand: x}\n", i);
	char *path = write_temp(&t);
	dagrun_diags *d = dagrun_diags_new(10);
	dagrun_workflow *wf = NULL;
	uint64_t before = bytes_read();
	assert_int_equal(dagrun_workflow_load(path, &wf, d), -EINVAL);
	uint64_t read = bytes_read() - before;
	assert_null(wf);
	assert_int_equal(dagrun_diags_count(d), 10);
	assert_string_equal(dagrun_diags_get(d, 0)->message,
			    "unknown key 'comand' in task; did you mean 'command'?");
	/* The thread read ahead by a bounded queue of events, not the file. */
	if (before)
		assert_true(read < ((uint64_t)1 << 20));
	dagrun_diags_free(d);
	remove(path);
	free(t.s);
}

static void a_small_file_and_a_large_one_report_alike(void **state)
{
	(void)state;
	/* The same error below and above the threshold. */
	const char *y = "name: t\ntasks:\n  - {id: a, command: x, dependencies: [b]}\n";
	struct text t = {0};
	add(&t, "%s", y);
	struct both r = load_both(&t, 0);
	assert_int_equal(r.rf, -EINVAL);
	assert_string_equal(dagrun_diags_get(r.df, 0)->message,
			    "task 'a' depends on unknown task 'b'; did you mean 'a'?");
	both_free(&r);
	while (t.len < BIG)
		add(&t, "# padding comment line to pass the threshold of the loader\n");
	r = load_both(&t, 0);
	assert_int_equal(r.rf, -EINVAL);
	assert_string_equal(dagrun_diags_get(r.df, 0)->message,
			    "task 'a' depends on unknown task 'b'; did you mean 'a'?");
	both_free(&r);
	free(t.s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_large_file_gives_the_model_of_the_same_buffer),
		cmocka_unit_test(a_syntax_error_deep_in_a_large_file_is_reported_at_its_place),
		cmocka_unit_test(an_encoding_error_deep_in_a_large_file_is_reported_at_its_place),
		cmocka_unit_test(template_errors_in_a_large_file_are_reported_in_order),
		cmocka_unit_test(errors_past_the_cap_stop_the_parsing_thread_at_once),
		cmocka_unit_test(a_small_file_and_a_large_one_report_alike),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
