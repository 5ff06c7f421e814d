/* shell.h: POSIX sh quoting context, so that a template value substituted
 * into a `command` string or a shell `script` is always literal text.
 *
 * A struct sh follows the text of a script as the shell will read it:
 * quotes, backslashes, $( ), ${ }, $(( )), backticks, # comments and here-
 * documents. The renderer feeds it the rendered text so far; at a `{{ }}`
 * sh_substitute picks the quoting for the current context:
 *   outside quotes      one single-quoted word: 'it'\''s'
 *   "double quotes"     backslash before " $ ` \
 *   'single quotes'     each ' becomes '\''
 *   <<EOF here-document backslash before $ ` \ (quoted <<'EOF': as is)
 *   # comment           as is, if it has no newline
 * and refuses contexts it cannot make safe (inside `...`, ${ }, $(( )),
 * $'...', right after $ or \, in a here-document delimiter).
 * Invariant (checked after every substitution): the substituted text leaves
 * the quoting state exactly as it found it, and no line of a here-document
 * that holds substituted text ends the here-document. So a value cannot
 * change how the author's text around it is read.
 * Known limit: a `case` pattern's `)` inside $( ) is read as closing it.
 */
#ifndef DAGRUN_EXPR_SHELL_H
#define DAGRUN_EXPR_SHELL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define SH_MAX_DEPTH 32
#define SH_MAX_HEREDOCS 8
#define SH_MAX_DELIM 255

struct sh_frame {
	uint8_t type;        /* private: enum in shell.c */
	uint8_t cmdsub;      /* a NORMAL frame opened by $( */
	uint16_t depth;      /* ( ) or { } nesting inside the frame */
};

struct sh_heredoc {
	char delim[SH_MAX_DELIM + 1];
	uint8_t len;
	bool quoted;         /* <<'EOF': no expansion in the body */
	bool strip_tabs;     /* <<- */
};

struct sh {
	struct sh_frame stack[SH_MAX_DEPTH];
	unsigned depth;                    /* frames in use, >= 1 */
	bool esc, dollar, word_start, eat_paren, just_opened, lparen;
	uint8_t lt_run;                    /* unquoted '<' in a row */
	uint8_t hd_read;                   /* reading a << delimiter: 0 no */
	bool hd_sq, hd_dq, hd_esc;         /* quoting inside that delimiter */
	struct sh_heredoc hd[SH_MAX_HEREDOCS];
	unsigned n_hd;                     /* pending or active here-documents */
	bool hd_active;                    /* hd[0]'s body is being read */
	char line[SH_MAX_DELIM + 2];       /* start of the current line */
	size_t line_len;
	bool line_tabs;                    /* still in leading tabs */
	bool line_tainted;                 /* holds substituted text */
	const char *error;                 /* set when feeding failed */
};

/* Starts at the beginning of a script, outside any quotes. */
void sh_init(struct sh *m);

/* Follows n more bytes of script text; `value` marks bytes that came from a
 * substitution. Returns 0, or -EINVAL with m->error set (nesting deeper
 * than SH_MAX_DEPTH, a delimiter too long, a substituted line that ends a
 * here-document). */
int sh_feed(struct sh *m, const char *p, size_t n, bool value);

/* Appends v[0 .. n) to out quoted for the current context and follows it.
 * Returns 0; -EINVAL with *why set to a static message when the context
 * cannot be made safe or the value holds a NUL byte; -E2BIG/-ENOMEM from
 * out (then out is left as it was). */
int sh_substitute(struct sh *m, const char *v, size_t n, struct buf *out,
		  const char **why);

/* True when the interpreter command (e.g. "/bin/sh -e", "bash -euo
 * pipefail", "/usr/bin/env zsh") runs a POSIX-style shell: sh, bash, dash,
 * zsh, ksh, mksh, ash, yash, posh (also via busybox). NULL means the
 * default, /bin/sh -e. */
bool sh_is_posix_shell(const char *interp, size_t len);

#endif
