/* pipe.h: the event pipeline of the loader for large files: a producer
 * thread runs libyaml over the input and hands the events to the loading
 * thread in blocks, through a bounded single-producer, single-consumer ring,
 * so that parsing and building the model overlap on two cores.
 *
 * Invariant: until pipe_end(), only the producer touches the parser (and,
 * through the parser's read callback, whatever that callback writes), except
 * that once pipe_next() has returned false the producer is finished and the
 * parser's error may be read. Events stay owned by their block: the consumer
 * gets copies that point into the block and never frees them; a block is
 * refilled only after the consumer has moved past it, so the current event
 * stays valid until the next pipe_next() or pipe_end().
 */
#ifndef DAGRUN_PIPE_H
#define DAGRUN_PIPE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <yaml.h>

/* Events per block; a block may hold fewer (see pipe.c). */
#define PIPE_EVENTS 256

/* An event as a block holds it: the common events (short plain scalars,
 * the starts of collections without anchor or tag, their ends) in 24
 * bytes, so that few cache lines travel from one core to the other; any
 * other event whole, in the block's `full` array. */
struct pipe_event {
	uint32_t index, line, column;  /* start_mark; a file is < 4 GiB */
	uint32_t length;               /* of a scalar */
	uint32_t off;                  /* a scalar's text in the block; or the
					* index in full[] (PIPE_FULL) */
	uint8_t type;                  /* yaml_event_type_t */
	uint8_t style;                 /* of a scalar or collection */
	uint8_t flags;                 /* PIPE_* */
};

enum {
	PIPE_FULL = 1,                 /* the event is full[off] */
	PIPE_IMPLICIT = 2,             /* plain_implicit, or a collection's implicit */
	PIPE_QUOTED_IMPLICIT = 4,
};

struct pipe;

/* The consumer's position: the events of the current block not read yet,
 * and where the block keeps texts and whole events. */
struct pipe_cursor {
	const struct pipe_event *at, *end;
	const char *text;
	uint32_t text_len;
	const yaml_event_t *full;
};

/* Starts a producer thread parsing with `parser`, whose input is set (by
 * yaml_parser_set_input(), a read callback: the pipe wraps it) and about
 * `size` bytes long (which sizes the queue); the parser belongs to the
 * thread until pipe_end(), which reads nothing more once called. Returns 0 and the pipe in *out (to end with
 * pipe_end()), or -ENOMEM / -EAGAIN, after which nothing was started and
 * the caller may parse by itself. */
int pipe_start(struct pipe **out, yaml_parser_t *parser, uint64_t size);

/* pipe_next() past the cursor's block; see there. */
bool pipe_next_block(struct pipe *p, struct pipe_cursor *c, yaml_event_t *ev);

/* The text of e when it is a scalar held in the block, else NULL. */
static inline const char *pipe_text(const struct pipe_cursor *c,
				    const struct pipe_event *e)
{
	return e->type == YAML_SCALAR_EVENT && !(e->flags & PIPE_FULL) ?
	       c->text + e->off : NULL;
}

/* Writes the event e of c's block into *ev. */
static inline void pipe_expand(const struct pipe_cursor *c, const struct pipe_event *e,
			       yaml_event_t *ev)
{
	if (e->flags & PIPE_FULL) {
		*ev = c->full[e->off];
		return;
	}
	/* The mark built once and stored twice: copying start_mark to
	 * end_mark would read back what was just stored, field by field. */
	yaml_mark_t m = {e->index, e->line, e->column};
	ev->type = (yaml_event_type_t)e->type;
	ev->start_mark = m;
	ev->end_mark = m;
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		ev->data.scalar.anchor = ev->data.scalar.tag = NULL;
		ev->data.scalar.value = (yaml_char_t *)(c->text + e->off);
		ev->data.scalar.length = e->length;
		ev->data.scalar.plain_implicit = !!(e->flags & PIPE_IMPLICIT);
		ev->data.scalar.quoted_implicit = !!(e->flags & PIPE_QUOTED_IMPLICIT);
		ev->data.scalar.style = (yaml_scalar_style_t)e->style;
		break;
	case YAML_MAPPING_START_EVENT:
		ev->data.mapping_start.anchor = ev->data.mapping_start.tag = NULL;
		ev->data.mapping_start.implicit = !!(e->flags & PIPE_IMPLICIT);
		ev->data.mapping_start.style = (yaml_mapping_style_t)e->style;
		break;
	case YAML_SEQUENCE_START_EVENT:
		ev->data.sequence_start.anchor = ev->data.sequence_start.tag = NULL;
		ev->data.sequence_start.implicit = !!(e->flags & PIPE_IMPLICIT);
		ev->data.sequence_start.style = (yaml_sequence_style_t)e->style;
		break;
	default:
		break;
	}
}

/* The next event, as yaml_parser_parse() would give it (after the stream's
 * end, an empty event; end_mark aside, which is start_mark but for events
 * with an anchor, a tag or a long text), but still owned by the pipe: the
 * caller must not yaml_event_delete() it. Returns false when parsing
 * failed there, with *ev zeroed; the parser then holds the error and the
 * producer touches nothing any more. */
static inline bool pipe_next(struct pipe *p, struct pipe_cursor *c, yaml_event_t *ev)
{
	if (c->at < c->end) {
		pipe_expand(c, c->at++, ev);
		return true;
	}
	return pipe_next_block(p, c, ev);
}

/* Starts a thread of the loader running fn(arg), with every signal
 * blocked. Returns 0 or -errno (-EAGAIN). */
int pipe_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* Stops the producer if it still runs, joins it, deletes every event still
 * queued and frees the pipe. Events handed out are invalid afterwards.
 * Accepts NULL. */
void pipe_end(struct pipe *p);

#endif
