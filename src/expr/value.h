/* value.h: a task's result as expressions see it, and the $DAGRUN_OUTPUT
 * file format.
 *
 * struct expr_result only borrows: the scheduler keeps the memory, and the
 * expression engine reads it during one evaluation and copies what it uses
 * into Lua. Field names in comments are the ones expressions use.
 *
 * $DAGRUN_OUTPUT (the GitHub Actions $GITHUB_OUTPUT format): one `key=value`
 * per line, or a multi-line value as
 *     key<<DELIMITER
 *     line 1
 *     line 2
 *     DELIMITER
 * Invariant of a parsed struct expr_outputs: keys are unique (a key written
 * twice keeps its last value, at its first position), match [A-Za-z0-9_-]+,
 * and every key and value is NUL-terminated inside the struct's arena.
 * Parsing never gives up on the whole file: every valid entry is kept, and
 * what is not (a malformed line, a value never closed, keys or bytes past
 * a cap, a file that is not a regular file) is skipped with a warning that
 * names the line and the reason.
 */
#ifndef DAGRUN_EXPR_VALUE_H
#define DAGRUN_EXPR_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/arena.h"

/* A key and a value; the value may hold NUL bytes (value_len counts them). */
struct expr_kv {
	const char *key;
	const char *value;
	size_t value_len;
};

struct expr_result {
	int status;                 /* status: enum dagrun_status */
	int exit_code;              /* exitCode; < 0: none (nil) */
	const char *output;         /* output (NULL: ""); ONE trailing "\n" or
				     * "\r\n" is removed when read */
	size_t output_len;
	json_t *json;               /* json: borrowed; NULL: `output` parsed
				     * when read (nil if it is not JSON) */
	const struct expr_kv *outputs;  /* outputs.<key> */
	size_t n_outputs;
	int http_status;            /* http.status; 0: none (nil) */
	const struct expr_kv *headers;  /* http.headers (names are lowercased
				     * when read) */
	size_t n_headers;
	int64_t prompt_tokens;      /* usage.promptTokens; < 0: none */
	int64_t completion_tokens;  /* usage.completionTokens; < 0: none */
	uint32_t attempts;          /* attempts */
	uint64_t duration_ms;       /* durationMs */
	bool output_truncated;      /* outputTruncated: `output` is the first
				     * 1 MiB of more */
	const char *error_class;    /* error.class, e.g. "transient"; NULL: none */
	const char *error_message;  /* error.message; NULL: none */
};

/* An empty result: status pending, no exit code, no tokens. */
void expr_result_init(struct expr_result *r);

/* Limits of the $DAGRUN_OUTPUT file. */
#define EXPR_OUTPUTS_MAX_BYTES ((size_t)1 << 20)  /* the whole file: 1 MiB */
#define EXPR_OUTPUTS_MAX_KEYS  1000u
#define EXPR_OUTPUTS_MAX_KEY   256u               /* bytes in a key */
#define EXPR_OUTPUTS_MAX_WARN  10u                /* warnings kept, the rest counted */

struct expr_outputs {
	struct expr_kv *v;
	size_t n;
	const char **warn;     /* what was skipped and why: "line 3: ..." */
	size_t n_warn;
	size_t n_warn_more;    /* warnings past EXPR_OUTPUTS_MAX_WARN, not kept */
	struct arena arena;    /* holds v, warn, the keys, values and messages */
};

/* Parses the text of a $DAGRUN_OUTPUT file into *out (which the caller
 * frees with expr_outputs_free, also on failure). Lines end with "\n"; a
 * "\r" before it is dropped. Blank lines are ignored. Skipped, each with a
 * warning in out->warn: a line that is neither key=value nor key<<DELIM, an
 * invalid or too long key (with the value that follows it), a value whose
 * DELIM line never comes (with the lines after it), a new key past
 * EXPR_OUTPUTS_MAX_KEYS, and, in a text over EXPR_OUTPUTS_MAX_BYTES,
 * everything after the last complete line within the cap. Returns 0 or
 * -ENOMEM. */
int expr_outputs_parse(const char *data, size_t len, struct expr_outputs *out);

/* Reads and parses the file at path, which a task controls: it is opened
 * without blocking and without following a symbolic link, and only a
 * regular file is read, at most EXPR_OUTPUTS_MAX_BYTES (+ 1) of it. A
 * missing file is no outputs. Anything else (a FIFO, a symbolic link, a
 * directory, a device, a read error) is no outputs and a warning. Returns
 * 0 or -ENOMEM. */
int expr_outputs_read(const char *path, struct expr_outputs *out);

/* Sets key k (NUL-terminated; [A-Za-z0-9_-]+, at most EXPR_OUTPUTS_MAX_KEY
 * bytes) to v[0 .. vn) in o (zero-initialised or filled by this module),
 * as a line of the file would. Returns 0, 1 when k is new and o already
 * has EXPR_OUTPUTS_MAX_KEYS keys (nothing set), -EINVAL for an invalid
 * key, or -ENOMEM. */
int expr_outputs_set(struct expr_outputs *o, const char *k, const char *v, size_t vn);

/* Frees what *o holds and empties it. Accepts NULL and an empty struct. */
void expr_outputs_free(struct expr_outputs *o);

#endif
