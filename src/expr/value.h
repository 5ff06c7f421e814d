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
 */
#ifndef DAGRUN_EXPR_VALUE_H
#define DAGRUN_EXPR_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/arena.h"

struct expr_error;

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

struct expr_outputs {
	struct expr_kv *v;
	size_t n;
	struct arena arena;    /* holds v, the keys and the values */
};

/* Parses the text of a $DAGRUN_OUTPUT file into *out (which the caller
 * frees with expr_outputs_free, also on failure). Lines end with "\n"; a
 * "\r" before it is dropped. Blank lines are ignored. Returns 0; -EINVAL for
 * a malformed line, an invalid key or an unclosed delimiter (err says which
 * line: "line 3: ..."); -E2BIG past a cap; -ENOMEM. */
int expr_outputs_parse(const char *data, size_t len, struct expr_outputs *out,
		       struct expr_error *err);

/* Reads and parses the file at path. A missing or empty file is no outputs
 * (returns 0). Returns what expr_outputs_parse returns, -E2BIG for a file
 * over EXPR_OUTPUTS_MAX_BYTES, or -errno from reading. */
int expr_outputs_read(const char *path, struct expr_outputs *out,
		      struct expr_error *err);

/* Frees what *o holds and empties it. Accepts NULL and an empty struct. */
void expr_outputs_free(struct expr_outputs *o);

#endif
