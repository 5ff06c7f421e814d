/* loader.h: private interface between the parts of the workflow loader.
 *
 * The loader is a recursive-descent reader over libyaml's event stream: no
 * document tree is ever built. Invariant: `struct loader` holds the current
 * event; a function that reads a value starts with the value's first event
 * current and returns with its last event current (the scalar itself, or
 * the matching MAPPING_END / SEQUENCE_END), so its caller always continues
 * with load_next(). Once `stop` is set, every reader returns at once.
 *
 * Files: cursor.c (events, limits, errors, scalars), read.c (typed
 * scalars, keyed maps), maps.c (free maps, any-values, resources), task.c
 * (one task, its kind and its checks), ids.c (ids, dependencies), opts.c
 * (options, retry, defaults), loader.c (top level, entry points),
 * resolve.c (what needs the whole file: ids, dependencies, pools,
 * defaults), pipe.c (parsing large files in a thread of its own, behind
 * load_next()).
 *
 * The task kinds are not the loader's: their keys are handed down by the
 * caller (struct load_kind, below; kinds/ defines them), and read through
 * the readers declared here, which are the kinds' API as well.
 */
#ifndef DAGRUN_LOADER_H
#define DAGRUN_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "load/load.h"
#include "load/pipe.h"
#include "model/model.h"
#include "util/diag.h"

struct pos {
	uint32_t line, col;   /* 1-based */
};

/* ---- options with a "set" mask (defaults and tasks) ---------------------- */

enum {
	O_DESCRIPTION = 1u << 0, O_WHEN = 1u << 1, O_WORKDIR = 1u << 2,
	O_ENV = 1u << 3, O_RES = 1u << 4, O_TIMEOUT = 1u << 5,
	O_KILL_GRACE = 1u << 6, O_R_ATTEMPTS = 1u << 7, O_R_BACKOFF = 1u << 8,
	O_R_INITIAL = 1u << 9, O_R_MAX_DELAY = 1u << 10, O_R_JITTER = 1u << 11,
	O_R_RETRY_ON = 1u << 12, O_R_CODES = 1u << 13, O_CACHE = 1u << 14,
};

/* A task's own options while loading; `o` first, so a dr_task_opts pointer
 * handed out for it converts back. Fields whose bit is clear in `set` are
 * filled from the defaults by resolve. */
struct opts_tmp {
	struct dr_task_opts o;
	uint32_t set;
};

/* ---- keyed maps ------------------------------------------------------------ */

struct loader;
typedef void (*key_fn)(struct loader *ld, void *obj);

struct keydef {
	const char *name;
	uint8_t len;
	bool opt;            /* the handler takes tab->opts(ld, obj) */
	uint8_t kind;        /* 0, or 1 + the kind whose spec the handler
			      * takes (tab->spec(ld, obj, kind - 1)) */
	key_fn fn;
};

#define KEY(n, f) {n, sizeof(n) - 1, false, 0, f}
#define KEY_OPT(n, f) {n, sizeof(n) - 1, true, 0, f}
#define MAX_KEYS 64

struct keytab {
	const char *what;                   /* "task", "retry", ... */
	const struct keydef *keys;
	unsigned n;                         /* <= MAX_KEYS */
	struct opts_tmp *(*opts)(struct loader *ld, void *obj);
	void *(*spec)(struct loader *ld, void *obj, unsigned kind);
};

/* Which keys a mapping had, and where each was written; `hinted` are the
 * keys suggested for unknown ones ("did you mean"), whose absence is then
 * not reported again as missing. */
struct map_seen {
	uint64_t mask, hinted;
	struct pos at[MAX_KEYS];
};

/* Whether key k is present, or was probably meant by an unknown key. */
static inline bool seen_or_hinted(const struct map_seen *s, unsigned k)
{
	return ((s->mask | s->hinted) >> k) & 1;
}

/* ---- the loader ---------------------------------------------------------------- */

enum { GROUP_MAIN = 0, GROUP_SUCCESS, GROUP_FAILURE, GROUP_EXIT, N_GROUPS };

struct task_vec {
	struct dr_task *v;
	uint32_t n, cap;
};

struct pool_info {
	uint32_t capacity;     /* 0: referenced but never declared */
	struct pos at;
};

struct loader {
	yaml_parser_t parser;      /* the producer's while pipe runs, see pipe.h */
	/* The current event; aligned so that the loading thread's writes never
	 * share a cache line with the parser's, when a producer thread runs it. */
	_Alignas(64) yaml_event_t ev;
	struct pipe *pipe;         /* NULL: parse here, with parser */
	struct pipe_cursor pc;
	/* The next event of pc's block whose lookups to prefetch, and that
	 * block's first and end events. */
	const struct pipe_event *pf, *pf_first, *pf_end;
	bool parser_ready, have_ev;
	bool stop;                 /* stop reading: fatal error or diags full */
	int err;                   /* a failure not caused by the file (-ENOMEM) */
	unsigned depth;            /* open mappings and sequences */
	size_t nerr;               /* errors reported */
	const char *syntax_msg;    /* the stored YAML syntax error, if any */

	struct dagrun_workflow *wf;
	struct dagrun_diags *diags;
	const char *file;          /* for diagnostics */
	const struct load_opts *opts; /* handed down by the caller */
	struct task_keys *tk;      /* the task keys of opts' kinds */
	uint32_t kind_tasks[DR_MAX_KINDS]; /* tasks of each kind */

	/* input: a file descriptor or a buffer */
	int fd;
	const char *data;
	size_t len;
	uint64_t size_hint;        /* size of a large input, to size tables; or 0 */
	uint64_t bytes;            /* read so far from fd */
	int io_err;                /* errno of a failed read */
	bool too_big;
	bool too_long_span;        /* SPAN_MAX_BYTES read without a token taken */
	bool stream;               /* fd is not a regular file (a pipe, a FIFO, a
				    * device): it cannot be read again */
	bool fifo;                 /* ... and it is a pipe or a FIFO */
	size_t span_tokens;        /* the parser's tokens_parsed at span_from */
	uint64_t span_from;        /* bytes read when a token was last taken */

	/* scratch stack for collections being read; 8-byte aligned pushes */
	char *stk;
	size_t top, stk_cap;

	const char *key;           /* name of the key whose value is read */
	struct pos key_at;

	struct task_vec groups[N_GROUPS];
	uint32_t n_tasks;          /* over all groups */
	uint64_t deps_cap;         /* capacity of wf->deps */
	uint32_t sym_cap;          /* capacity of wf->sym_task */

	struct intern pools;       /* pool names, symbol = pool index */
	struct pool_info *pool_v;
	uint32_t pool_cap;

	struct opts_tmp defaults;
	int32_t default_priority;  /* INT32_MIN: not set */

	struct idc_entry *idc;     /* recently seen ids, see intern_id() */
	uint64_t hints;            /* ids compared for "did you mean" so far */
};

/* Input read while libyaml's parser takes no token, at most: 64 times the
 * string limit, so that no valid file comes near it, while a runaway
 * stream (one endless scalar or comment) stops long before the file limit
 * and before libyaml holds hundreds of MB in one string. */
#define SPAN_MAX_BYTES ((uint64_t)64 << 20)

/* A direct-mapped cache of recently seen short ids in front of wf->ids:
 * dependencies mostly name tasks declared shortly before, and this saves
 * the hash table's cache misses on a million-task file. */
#define IDC_BITS 17
#define IDC_LEN 11
struct idc_entry {
	uint32_t sym;
	uint8_t len;          /* 0: empty */
	char s[IDC_LEN];
};

/* The cache slot of s[0..n): must stay the hash ids.c's intern_id() uses,
 * for load_next() to prefetch the slots of ids about to be read. */
static inline uint32_t idc_slot(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return (h ^ (h >> 15)) & ((1u << IDC_BITS) - 1);
}

/* A task priority nobody wrote. */
#define PRIORITY_UNSET INT32_MIN

/* ---- task kinds: the loader's part of a kind's descriptor ----------------
 *
 * The caller hands the kinds down (struct load_opts); the task's key table
 * is made of the generic keys and every kind's keys. A kind's keys are
 * read into its own struct (its spec), allocated in the arena on the first
 * of them. After the task's map: the kind is the one whose selecting key
 * came first (two kinds' selecting keys: an error), or the one `type:`
 * names, or, with neither, a kind whose own keys select it (ai: `model`
 * alone makes an ai task, which then misses its prompt); then that kind's
 * check() runs. */
#define LOAD_MAX_KINDS DR_MAX_KINDS

struct kind_view;

struct load_kind {
	struct dr_kind model;          /* first: what the model sees of it */
	const struct keydef *keys;     /* its keys at the task level (KEY(),
					* the handler takes the spec); keys[0
					* .. n_select) select the kind */
	uint8_t n_keys, n_select;
	bool keys_select;              /* any key of it selects it, when no
					* other kind's selecting key does */
	const char *type;              /* the `type:` value naming it ("ai"),
					* or NULL: it is a "standard" kind */
	const char *only_in;           /* how its other keys elsewhere are
					* reported: "'K' is only valid ONLY_IN" */
	size_t spec_size;              /* its struct, allocated zeroed */
	void (*spec_init)(void *spec); /* defaults in a new spec; may be NULL */
	/* Checks a task of this kind as a whole, once its map is read
	 * (required keys, keys that exclude each other); may be NULL. */
	void (*check)(struct loader *ld, const struct kind_view *v);
};

/* What a kind's check() sees of the task. */
struct kind_view {
	const struct map_seen *seen;
	unsigned first, first_rest;    /* the bits of its keys[0] and keys[n_select] */
	unsigned n_select;
	void *spec;                    /* the kind's struct, or NULL when none
					* of its keys was read */
	const char *name;              /* "task 'x'" or "task", for messages */
	struct pos at;                 /* the task (its id, else its map) */
};

/* The bit in seen of the kind's key k (an index in its keys[]). */
static inline unsigned kind_bit(const struct kind_view *v, unsigned k)
{
	return k < v->n_select ? v->first + k : v->first_rest + k - v->n_select;
}

/* Whether the kind's key k was written; also when an unknown key was
 * probably meant as it; where it was written. */
static inline bool kind_has(const struct kind_view *v, unsigned k)
{
	return (v->seen->mask >> kind_bit(v, k)) & 1;
}

static inline bool kind_has_or_hinted(const struct kind_view *v, unsigned k)
{
	return seen_or_hinted(v->seen, kind_bit(v, k));
}

static inline struct pos kind_key_at(const struct kind_view *v, unsigned k)
{
	return v->seen->at[kind_bit(v, k)];
}

/* The task key table made from the generic keys and the kinds': built once
 * per load. Bits: G_ID and G_DEPENDENCIES, then every kind's selecting
 * keys, then the other generic keys (from g_rest), then the kinds' other
 * keys: the most frequent keys first. */
enum {
	G_ID, G_DEPENDENCIES, G_TYPE, G_DESCRIPTION, G_PRIORITY, G_RESOURCES,
	G_TIMEOUT, G_KILL_GRACE, G_RETRY, G_ENV, G_WORKDIR, G_WHEN, G_CACHE, G_COUNT
};

struct task_keys {
	struct keydef keys[MAX_KEYS];
	struct keytab tab;
	unsigned g_rest;               /* the bit of G_TYPE; G_x is g_rest + x - G_TYPE */
	uint8_t key_kind[MAX_KEYS];    /* 1 + the kind of each key, or 0 */
	uint16_t first[LOAD_MAX_KINDS]; /* bit of each kind's keys[0] .. */
	uint16_t first_rest[LOAD_MAX_KINDS]; /* .. and of its keys[n_select] */
	uint32_t spec_words[LOAD_MAX_KINDS]; /* each kind's spec, in 8-byte words */
	uint64_t select;               /* selecting keys, of every kind */
	uint64_t quick;                /* selecting keys of kinds without check()
					* or type: one alone needs no checks */
	const struct load_kind *const *kinds;
	unsigned n_kinds;
	const char *type_names[LOAD_MAX_KINDS + 1]; /* "standard", then typed kinds */
	uint8_t type_kind[LOAD_MAX_KINDS + 1];      /* 1 + their kind; [0]: 0 */
	unsigned n_types;
	char nothing[160];             /* "add 'command', 'script', ... or 'x'" */
};

/* One task while it is read. */
struct task_tmp {
	struct map_seen seen;
	struct pos start;          /* the task mapping */
	uint32_t sym;              /* INTERN_NONE: no usable id */
	struct pos id_at;
	int32_t priority;
	uint8_t type;              /* 0: unset, else 1 + index in type_names */
	bool deps_capped;
	uint16_t spec_set;         /* kinds whose spec[] is allocated */
	uint32_t dep_first, dep_count;
	struct opts_tmp *opts;
	void *spec[LOAD_MAX_KINDS];
};

/* ---- cursor.c ------------------------------------------------------------- */

/* Reads the next event. Returns false (and sets stop) on a syntax error,
 * OOM, a limit, or when stop was already set. */
bool load_next(struct loader *ld);

/* Skips the node whose first event is current. */
void load_skip(struct loader *ld);

/* Position of the current event (1-based). */
struct pos load_pos(const struct loader *ld);

/* Adds an error at `at`. Sets stop once the diagnostics list is full. */
void load_error(struct loader *ld, struct pos at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void load_warn(struct loader *ld, struct pos at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records an out-of-memory failure and stops. */
void load_oom(struct loader *ld);

/* Kinds of a scalar, in the YAML 1.2 core schema. */
enum scalar_kind { SK_NULL, SK_BOOL, SK_INT, SK_REAL, SK_STRING };

struct scalar {
	enum scalar_kind kind;
	bool b;
	int64_t i;
	double d;
};

/* Whether a plain (unquoted, untagged) scalar is null: "", ~, null. */
bool load_plain_null(const char *s, size_t n);

/* Classifies the current event, which must be a scalar. */
void load_scalar(const struct loader *ld, struct scalar *out);

/* Name of the current node's type for messages: "string", "integer",
 * "number", "boolean", "null", "map", "list". */
const char *load_type_name(const struct loader *ld);

/* Reports "'KEY' must be WANT, got TYPE" at the current event and skips the
 * node. Says nothing for an alias, which was already reported. */
void load_type_error(struct loader *ld, const char *want);

/* The current scalar's bytes and length (NUL-terminated). */
static inline const char *load_str(const struct loader *ld)
{
	return (const char *)ld->ev.data.scalar.value;
}

static inline size_t load_len(const struct loader *ld)
{
	return ld->ev.data.scalar.length;
}

static inline bool load_is(const struct loader *ld, yaml_event_type_t t)
{
	return ld->ev.type == t;
}

/* ---- read.c, maps.c ---------------------------------------------------------------- */

/* realloc() for the vectors that grow with the task count (tasks, deps,
 * sym_task), advising huge pages once they are large. */
void *load_grow(void *p, size_t bytes);

/* Pushes n bytes on the scratch stack; returns the offset or SIZE_MAX on OOM
 * (stop is then set). Pointers into the stack die at the next push. */
size_t load_push(struct loader *ld, const void *p, size_t n);

/* Copies the scratch stack from `mark` up into the arena (NULL if empty or
 * on OOM, which sets stop) and pops it back to mark. */
void *load_pop(struct loader *ld, size_t mark);

/* Whether the current node is a non-null scalar (no error reported). */
bool read_is_text(const struct loader *ld);

/* Copies the current scalar into the arena as a dr_text. */
bool load_keep(struct loader *ld, struct dr_text *out);

/* Reports an error when the current scalar holds a NUL character (which
 * a C string, an argv, the environment, a path, a URL or a header cannot
 * hold), for ld->key; returns whether it did. */
bool load_refuse_nul(struct loader *ld);

/* read_string(), or read_nonempty(), for text that may hold a NUL: it is
 * sent as a JSON string (an AI model, system or prompt). */
bool read_json_text(struct loader *ld, bool nonempty, struct dr_text *out);

/* Whether the current node is a string-like scalar (any scalar but null)
 * without a NUL; if not, reports a type error (or the NUL) for ld->key and
 * skips it. */
bool read_is_string(struct loader *ld);

/* Typed readers of the current node, for the value of ld->key. Each reports
 * a type or range error, skips the node and returns false when it does
 * not fit; on success the value is stored and they return true. Text
 * holding a NUL is reported (load_refuse_nul()) but still stored. */
bool read_string(struct loader *ld, struct dr_text *out);     /* any scalar but null */
const struct dr_text *read_string_p(struct loader *ld);      /* same, arena copy */
bool read_nonempty(struct loader *ld, struct dr_text *out);
const struct dr_text *read_expr(struct loader *ld);          /* non-empty, arena copy */
bool read_int(struct loader *ld, int64_t lo, int64_t hi, int64_t *out);
bool read_number(struct loader *ld, double lo, double hi, double *out);
bool read_bool(struct loader *ld, bool *out);
bool read_duration(struct loader *ld, bool positive, uint64_t max, uint64_t *out);
/* An integer or a list of them, each in [lo, hi], pushed on the scratch
 * stack as int64_t; returns the count (at most max), or -1 after an error. */
long read_int_list(struct loader *ld, int64_t lo, int64_t hi, size_t max);
/* An enum: returns the index in names[] or -1 (after an error). */
int read_enum(struct loader *ld, const char *const *names, unsigned n);

/* The top-level keys `dagrun serve` reads (schedule.c): schedule,
 * timezone, overlap, catchup; then, after the workflow's map was read
 * (their bits from `first` on in seen), the check that the last three
 * come with a schedule. */
void load_key_schedule(struct loader *ld, void *obj);
void load_key_timezone(struct loader *ld, void *obj);
void load_key_overlap(struct loader *ld, void *obj);
void load_key_catchup(struct loader *ld, void *obj);
/* `trigger: { secret: "{{ secrets.NAME }}" }` (load/schedule.c). */
void load_key_trigger(struct loader *ld, void *obj);
void load_schedule_check(struct loader *ld, const struct map_seen *seen, unsigned first);

/* Reads the current mapping, dispatching each key through tab. Reports
 * unknown keys (with a hint), duplicates and non-string keys. */
void read_map(struct loader *ld, const struct keytab *tab, void *obj,
	      struct map_seen *seen);

/* read_map() of the current node, which must be a mapping (else a type
 * error, "a map"), keeping ld->key for the caller. Returns false when it
 * was not one, or the load stopped. */
bool read_submap(struct loader *ld, const struct keytab *tab, void *obj, struct map_seen *seen);

/* read_nonempty() of a URL: it must be http(s) (util/url.h's rule),
 * unless a template ({{) builds it (reported at the value otherwise).
 * Returns whether it was stored and fits. */
bool read_url(struct loader *ld, struct dr_text *out);

/* Reads a map of string keys to string values (env, headers, outputs).
 * names: NAME_ENV, NAME_HEADER or NAME_OUTPUT checks the keys. */
enum { NAME_ANY, NAME_ENV, NAME_HEADER, NAME_OUTPUT };
#define LOAD_MAX_OUTPUT_NAME 256   /* EXPR_OUTPUTS_MAX_KEY */
#define LOAD_MAX_OUTPUTS 1000      /* EXPR_OUTPUTS_MAX_KEYS */
void read_kvlist(struct loader *ld, struct dr_kvlist *out, int names);

/* Reads any value into the arena; NULL after an error or OOM. want_map:
 * only a mapping is accepted. */
const struct dr_value *read_value(struct loader *ld, bool want_map);

/* Reads a resource map (pool -> units) into out/n, pools by symbol. */
void read_res(struct loader *ld, struct dr_res **out, uint32_t *n);

/* Reports duplicates among n keys laid out every `stride` bytes from base,
 * each starting with a struct dr_text. Returns false on OOM. */
bool check_dup_keys(struct loader *ld, const void *base, size_t stride,
		    size_t n);

/* The pool symbol of name[0..n), creating the pool entry if new. */
uint32_t load_pool(struct loader *ld, const char *name, size_t n);

/* Adds every candidate of tab to a suggestion search. */
struct suggest;
void keytab_offer(const struct keytab *tab, struct suggest *s);

/* ---- ids.c, opts.c: key handlers of the task table --------------------------- */

/* The current scalar as a task id symbol (declaring: check its syntax),
 * or INTERN_NONE after an error. */
uint32_t ids_read(struct loader *ld, bool declaring);
void deps_read(struct loader *ld, void *task);          /* `dependencies` */

/* Option keys; obj is a struct opts_tmp. */
void opts_description(struct loader *ld, void *obj);
void opts_when(struct loader *ld, void *obj);
void opts_workdir(struct loader *ld, void *obj);
void opts_env(struct loader *ld, void *obj);
void opts_resources(struct loader *ld, void *obj);
void opts_timeout(struct loader *ld, void *obj);
void opts_kill_grace(struct loader *ld, void *obj);
void opts_retry(struct loader *ld, void *obj);
void opts_cache(struct loader *ld, void *obj);

/* ---- task.c ------------------------------------------------------------------- */

/* Reads the task mapping that is current into group g. */
void task_read(struct loader *ld, unsigned g);

/* Reads the `defaults` mapping that is current into ld->defaults. */
void defaults_read(struct loader *ld);

/* Builds ld->tk from ld->opts' kinds. Returns 0, or -EINVAL when the kinds
 * do not fit (too many, more than MAX_KEYS keys), or -ENOMEM. */
int task_keys_build(struct loader *ld);

/* ---- resolve.c --------------------------------------------------------------- */

/* After the whole file was read: orders the tasks, resolves ids,
 * dependencies and pools, applies defaults. Reports errors; returns false
 * only on OOM. */
bool resolve_all(struct loader *ld);

#endif
