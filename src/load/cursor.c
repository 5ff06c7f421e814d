/* cursor.c: the event cursor of the loader: pulling libyaml events,
 * enforcing limits, reporting errors, classifying scalars.
 *
 * Invariant: every event passes through load_next(), so the nesting depth,
 * scalar size, alias and tag rules are checked in exactly one place, and
 * the previous event is always released before the next is parsed.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load/loader.h"

#define TAG_PREFIX "tag:yaml.org,2002:"

struct pos load_pos(const struct loader *ld)
{
	return (struct pos){(uint32_t)ld->ev.start_mark.line + 1,
			    (uint32_t)ld->ev.start_mark.column + 1};
}

static void add(struct loader *ld, int sev, struct pos at, const char *fmt,
		va_list ap)
{
	if (sev == DAGRUN_ERROR)
		ld->nerr++;
	if (!ld->diags)
		return;
	diag_vadd(ld->diags, sev, ld->file, at.line, at.col, fmt, ap);
	if (diag_full(ld->diags))
		ld->stop = true;
}

void load_error(struct loader *ld, struct pos at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add(ld, DAGRUN_ERROR, at, fmt, ap);
	va_end(ap);
}

void load_warn(struct loader *ld, struct pos at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add(ld, DAGRUN_WARNING, at, fmt, ap);
	va_end(ap);
}

void load_oom(struct loader *ld)
{
	if (!ld->err)
		ld->err = -ENOMEM;
	ld->stop = true;
}

/* Line and column of byte `off` of the input, for reader errors, which
 * libyaml reports as an offset only; {0, 0} (none) when the input cannot
 * be read again up to there. */
static struct pos offset_pos(struct loader *ld, size_t off)
{
	struct pos p = {1, 1};
	char chunk[8192];
	size_t done = 0;
	if (ld->stream && off) /* a pipe or a device cannot be read again */
		return (struct pos){0, 0};
	while (done < off) {
		size_t want = off - done < sizeof(chunk) ? off - done : sizeof(chunk);
		ssize_t n;
		if (ld->data) {
			n = (ssize_t)(want < ld->len - done ? want : ld->len - done);
			memcpy(chunk, ld->data + done, (size_t)n);
		} else {
			n = pread(ld->fd, chunk, want, (off_t)done);
		}
		if (n <= 0)
			return (struct pos){0, 0};
		for (ssize_t i = 0; i < n; i++) {
			if (chunk[i] == '\n') {
				p.line++;
				p.col = 1;
			} else if (((unsigned char)chunk[i] & 0xC0) != 0x80) {
				p.col++;
			}
		}
		done += (size_t)n;
	}
	return p;
}

static void reader_error(struct loader *ld)
{
	yaml_parser_t *y = &ld->parser;
	if (ld->too_big) {
		load_error(ld, (struct pos){0, 0},
			   "file is larger than the limit of %zu MiB",
			   DAGRUN_MAX_FILE_BYTES >> 20);
		return;
	}
	if (ld->too_long_span) {
		load_error(ld, (struct pos){0, 0}, "more than %u MiB of input without "
			   "a complete YAML value (a string far over the limit of %zu MiB, "
			   "or an endless comment)", (unsigned)(SPAN_MAX_BYTES >> 20),
			   DAGRUN_MAX_STRING_BYTES >> 20);
		return;
	}
	if (ld->io_err) {
		if (!ld->err)
			ld->err = -ld->io_err;
		load_error(ld, (struct pos){0, 0}, "cannot read %s: %s",
			   ld->file, strerror(ld->io_err));
		return;
	}
	struct pos at = offset_pos(ld, y->problem_offset);
	if (y->problem_value != -1)
		load_error(ld, at, "%s (byte 0x%02X at offset %zu)", y->problem,
			   (unsigned)y->problem_value & 0xFF, y->problem_offset);
	else
		load_error(ld, at, "%s (at offset %zu)", y->problem,
			   y->problem_offset);
}

static void syntax_error(struct loader *ld)
{
	yaml_parser_t *y = &ld->parser;
	struct pos at = {(uint32_t)y->problem_mark.line + 1,
			 (uint32_t)y->problem_mark.column + 1};
	switch (y->error) {
	case YAML_MEMORY_ERROR:
		load_oom(ld);
		return;
	case YAML_READER_ERROR:
		reader_error(ld);
		return;
	default:
		break;
	}
	const char *problem = y->problem ? y->problem : "invalid YAML";
	size_t n = ld->diags ? ld->diags->n : 0;
	if (y->context)
		load_error(ld, at, "YAML syntax error: %s (%s at line %zu)",
			   problem, y->context, y->context_mark.line + 1);
	else
		load_error(ld, at, "YAML syntax error: %s", problem);
	if (ld->diags && ld->diags->n > n)
		ld->syntax_msg = ld->diags->v[n].message;
}

/* Custom tags name types this format does not have. */
static void check_tag(struct loader *ld, const yaml_char_t *tag)
{
	if (!tag || !strcmp((const char *)tag, "!") ||
	    !strncmp((const char *)tag, TAG_PREFIX, sizeof(TAG_PREFIX) - 1))
		return;
	load_error(ld, load_pos(ld), "unsupported YAML tag '%s'", (const char *)tag);
}

/* Applies the limits and rules every event is subject to. */
static bool check_event(struct loader *ld)
{
	yaml_event_t *e = &ld->ev;
	switch (e->type) {
	case YAML_MAPPING_START_EVENT:
	case YAML_SEQUENCE_START_EVENT:
		if (++ld->depth > DAGRUN_MAX_DEPTH) {
			load_error(ld, load_pos(ld), "nesting is deeper than the limit of %u levels",
				   DAGRUN_MAX_DEPTH);
			ld->stop = true;
			return false;
		}
		check_tag(ld, e->type == YAML_MAPPING_START_EVENT ?
			  e->data.mapping_start.tag : e->data.sequence_start.tag);
		break;
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		ld->depth--;
		break;
	case YAML_SCALAR_EVENT:
		if (e->data.scalar.length > DAGRUN_MAX_STRING_BYTES) {
			load_error(ld, load_pos(ld), "string is longer than the limit of %zu KiB",
				   DAGRUN_MAX_STRING_BYTES >> 10);
			ld->stop = true;
			return false;
		}
		if (e->data.scalar.tag)
			check_tag(ld, e->data.scalar.tag);
		break;
	case YAML_ALIAS_EVENT:
		load_error(ld, load_pos(ld),
			   "aliases are not supported (anchor '%s'); write the value out",
			   (const char *)e->data.alias.anchor);
		break;
	default:
		break;
	}
	return !ld->stop;
}

/* ---- prefetching -------------------------------------------------------------------
 *
 * On a large file, most of the loading thread's time would go to cache
 * misses on the id tables: the cache of recent ids for every id read, and
 * the symbol table for every id declared. With the events of a block
 * already parsed, the slots an upcoming scalar will need are loaded
 * LOOKAHEAD events in advance, so those misses overlap.
 */

#define LOOKAHEAD 16

/* Starts loading what reading event e of the cursor's block as an id will
 * look up. */
static void prefetch_event(const struct loader *ld, const struct pipe_event *e)
{
	const char *s = pipe_text(&ld->pc, e);
	size_t n = e->length;
	if (!s || !n)
		return;
	if (n <= IDC_LEN && ld->idc)
		__builtin_prefetch(&ld->idc[idc_slot(s, n)]);
	/* The value of a key `id`: an id declared, new to the symbol table. */
	const char *key = e > ld->pf_first ? pipe_text(&ld->pc, e - 1) : NULL;
	if (key && e[-1].length == 2 && key[0] == 'i' && key[1] == 'd')
		intern_prefetch(&ld->wf->ids, s, n);
}

static void prefetch_ahead(struct loader *ld)
{
	const struct pipe_cursor *c = &ld->pc;
	if (ld->pf_end != c->end) { /* a new block; its first event is current */
		ld->pf_first = c->at - 1;
		ld->pf = c->at;
		ld->pf_end = c->end;
	}
	const struct pipe_event *until = c->end - c->at > LOOKAHEAD ? c->at + LOOKAHEAD : c->end;
	for (; ld->pf < until; ld->pf++) {
		/* The block itself comes from the other core's cache: its
		 * events and texts further on are asked for early too. */
		if (c->end - ld->pf > 2 * LOOKAHEAD)
			__builtin_prefetch(ld->pf + 2 * LOOKAHEAD);
		if (pipe_text(c, ld->pf) && c->text_len - ld->pf->off > 256)
			__builtin_prefetch(c->text + ld->pf->off + 256);
		prefetch_event(ld, ld->pf);
	}
}

bool load_next(struct loader *ld)
{
	if (ld->stop)
		return false;
	if (ld->pipe) {
		/* The pipe owns its events; once it fails, the producer is done
		 * and the parser holds the error. */
		if (!pipe_next(ld->pipe, &ld->pc, &ld->ev))
			goto fail;
		prefetch_ahead(ld);
		return check_event(ld);
	}
	if (ld->have_ev) {
		yaml_event_delete(&ld->ev);
		ld->have_ev = false;
	}
	if (!yaml_parser_parse(&ld->parser, &ld->ev))
		goto fail;
	ld->have_ev = true;
	return check_event(ld);
fail:
	syntax_error(ld);
	ld->stop = true;
	return false;
}

void load_skip(struct loader *ld)
{
	if (!load_is(ld, YAML_MAPPING_START_EVENT) &&
	    !load_is(ld, YAML_SEQUENCE_START_EVENT))
		return;
	unsigned until = ld->depth - 1;
	while (load_next(ld)) {
		if ((load_is(ld, YAML_MAPPING_END_EVENT) ||
		     load_is(ld, YAML_SEQUENCE_END_EVENT)) && ld->depth == until)
			return;
	}
}

/* ---- scalars ------------------------------------------------------------------ */

static bool in(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (!strcmp(s, *set))
			return true;
	return false;
}

static bool digits(const char *s, const char *digits_set)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr(digits_set, *s))
			return false;
	return true;
}

/* Decimal, 0x hex or 0o octal integer; false when s is not one or does not
 * fit (then it is read as a real, or a string). */
static bool parse_int(const char *s, int64_t *out)
{
	int base = 10;
	const char *p = s;
	if (!strncmp(s, "0x", 2) && digits(s + 2, "0123456789abcdefABCDEF")) {
		base = 16;
		p = s + 2;
	} else if (!strncmp(s, "0o", 2) && digits(s + 2, "01234567")) {
		base = 8;
		p = s + 2;
	} else {
		const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
		if (!digits(d, "0123456789"))
			return false;
	}
	errno = 0;
	char *end;
	long long v = strtoll(p, &end, base);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* [-+]? ( . [0-9]+ | [0-9]+ ( . [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_real(const char *s)
{
	const char *p = s;
	if (*p == '-' || *p == '+')
		p++;
	size_t before = strspn(p, "0123456789");
	p += before;
	size_t after = 0;
	if (*p == '.') {
		after = strspn(p + 1, "0123456789");
		p += 1 + after;
	}
	if (!before && !after)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		size_t e = strspn(p, "0123456789");
		if (!e)
			return false;
		p += e;
	}
	return *p == '\0';
}

static bool special_real(const char *s, double *d)
{
	static const char *const inf[] = {".inf", ".Inf", ".INF", NULL};
	static const char *const nan_[] = {".nan", ".NaN", ".NAN", NULL};
	const char *p = (*s == '-' || *s == '+') ? s + 1 : s;
	if (in(p, inf)) {
		*d = *s == '-' ? -INFINITY : INFINITY;
		return true;
	}
	if (p == s && in(s, nan_)) {
		*d = NAN;
		return true;
	}
	return false;
}

bool load_plain_null(const char *s, size_t n)
{
	return n == 0 || (n == 1 && s[0] == '~') ||
	       (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) ||
			   !memcmp(s, "NULL", 4)));
}

static void classify_plain(const char *s, size_t n, struct scalar *out)
{
	static const char *const trues[] = {"true", "True", "TRUE", NULL};
	static const char *const falses[] = {"false", "False", "FALSE", NULL};
	out->kind = SK_STRING;
	if (load_plain_null(s, n)) {
		out->kind = SK_NULL;
	} else if (in(s, trues) || in(s, falses)) {
		out->kind = SK_BOOL;
		out->b = s[0] == 't' || s[0] == 'T';
	} else if (parse_int(s, &out->i)) {
		out->kind = SK_INT;
	} else if (is_real(s)) {
		out->kind = SK_REAL;
		out->d = strtod(s, NULL);
	} else if (special_real(s, &out->d)) {
		out->kind = SK_REAL;
	}
}

void load_scalar(const struct loader *ld, struct scalar *out)
{
	const yaml_event_t *e = &ld->ev;
	const char *tag = (const char *)e->data.scalar.tag;
	memset(out, 0, sizeof(*out));
	out->kind = SK_STRING;
	if (tag) {
		if (!strcmp(tag, "!") || !strcmp(tag, TAG_PREFIX "str"))
			return;
		classify_plain(load_str(ld), load_len(ld), out);
		return;
	}
	if (e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return;
	classify_plain(load_str(ld), load_len(ld), out);
}

const char *load_type_name(const struct loader *ld)
{
	static const char *const names[] = {"null", "boolean", "integer",
					    "number", "string"};
	struct scalar sc;
	switch (ld->ev.type) {
	case YAML_MAPPING_START_EVENT: return "map";
	case YAML_SEQUENCE_START_EVENT: return "list";
	case YAML_ALIAS_EVENT: return "alias";
	case YAML_SCALAR_EVENT:
		load_scalar(ld, &sc);
		return names[sc.kind];
	default: return "nothing";
	}
}

void load_type_error(struct loader *ld, const char *want)
{
	if (!load_is(ld, YAML_ALIAS_EVENT))
		load_error(ld, load_pos(ld), "'%s' must be %s, got %s", ld->key,
			   want, load_type_name(ld));
	load_skip(ld);
}
