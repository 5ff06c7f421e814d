/* pipe.c: the loader's event pipeline (see pipe.h): a ring of blocks of up
 * to PIPE_EVENTS events between one producer thread, which runs
 * yaml_parser_parse(), and the loading thread.
 *
 * Invariant: `head` counts the blocks the producer has published, `tail`
 * those the consumer has finished with; blocks [tail, head) belong to the
 * consumer, the others to the producer. Each side publishes with a release
 * store and reads the other's counter with an acquire load, so one
 * synchronisation covers a whole block. A side that finds the ring full
 * (producer) or empty (consumer) spins a little, then sleeps on a futex,
 * and is woken only once the other side has made room for (or filled) a
 * good part of the ring, so that a wake-up, costly in a virtual machine,
 * is shared by many blocks.
 *
 * Input that yields no event for a while (a long comment, a long scalar)
 * does not hold back the events parsed before it: the producer's read
 * callback, which wraps the loader's, publishes the block being filled
 * once SPARSE_BYTES were read since its last event, and goes on in the
 * next block; so the consumer meets an error, and stops the pipe, while
 * the producer is still reading. Once stopped, the producer reads nothing
 * more: the wrapper fails the read, which fails the parse.
 *
 * The common events are stored compactly (struct pipe_event) with their
 * text copied into the block, and the producer frees libyaml's allocations
 * at once: the memory the parser allocates stays in the producer's thread
 * cache, and the consumer reads events and texts sequentially. The other
 * events keep libyaml's allocations in the block's `full` array until the
 * block is refilled or the pipe ends.
 */
#include "load/pipe.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MIN_BLOCKS 16         /* blocks in the ring (a power of two), at least ... */
#define MAX_BLOCKS 256        /* ... and at most */
#define INPUT_PER_BLOCK (64 << 10) /* bytes of input per block of the ring */
#define PIPE_FULLS 32         /* whole events per block */
#define PIPE_TEXT 4096        /* bytes of scalar texts per block */
#define PIPE_COPY_MAX 1024    /* longer scalars are kept whole */
#define SPINS 2048            /* waits for the other side before sleeping */
#define SPARSE_BYTES (64 << 10)    /* input without an event before the block
				    * being filled is published as it is */

struct pipe_block {
	struct pipe_event ev[PIPE_EVENTS];
	uint32_t n, n_full, text_len;
	bool last;                  /* the producer stopped after this block */
	bool failed;                /* ... because yaml_parser_parse() failed */
	yaml_event_t full[PIPE_FULLS];
	char text[PIPE_TEXT];       /* NUL-terminated texts of scalars */
};

/* A counter one side advances and the other waits on. `wake` is the futex
 * word: bumped by the advancing side to wake a sleeper, so that a wake-up
 * between the sleeper's last check and its sleep is never lost. */
struct side {
	_Alignas(64) _Atomic uint32_t count;
	_Atomic uint32_t waiting;   /* the other side sleeps, or is about to */
	_Atomic uint32_t wake;
};

struct pipe {
	struct side head;           /* blocks published; the consumer waits */
	struct side tail;           /* blocks released; the producer waits */
	_Alignas(64) _Atomic bool stop;  /* set by pipe_end() */

	/* producer only */
	_Alignas(64) yaml_parser_t *parser;
	struct pipe_block *filling; /* the block being filled: blocks[head % n] */
	uint32_t published;         /* blocks published (head.count, ours) */
	uint64_t since_event;       /* input read since the last event stored */
	yaml_read_handler_t *read;  /* the loader's read callback, wrapped */
	void *read_data;

	/* consumer only */
	_Alignas(64) uint32_t taken;     /* blocks the consumer started, <= head */
	struct pipe_block *cur;     /* the block being read, NULL before the first */
	pthread_t thread;

	/* A deep ring lets one side go on while the other waits for a CPU, on
	 * a busy machine; the memory of a block is touched only when used. */
	uint32_t n_blocks;          /* MIN_BLOCKS .. MAX_BLOCKS, a power of two */
	struct pipe_block *blocks;  /* calloc'd: zero pages until used */
};

/* ---- waiting -------------------------------------------------------------- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static void futex_wait(_Atomic uint32_t *word, uint32_t val)
{
	/* Returns at once if *word != val; spurious returns are harmless:
	 * every caller checks its condition again. */
	syscall(SYS_futex, (uint32_t *)(void *)word, FUTEX_WAIT_PRIVATE, val, NULL,
		NULL, 0);
}

static void wake(struct side *s)
{
	atomic_store(&s->waiting, 0);
	atomic_fetch_add(&s->wake, 1);
	syscall(SYS_futex, (uint32_t *)(void *)&s->wake, FUTEX_WAKE_PRIVATE, 1, NULL,
		NULL, 0);
}

/* Advances s->count to `count` (a release), and wakes the other side if it
 * sleeps and `enough` says it has enough to do now. The sequentially
 * consistent store and load pair with the sleeper's store of `waiting` and
 * load of the count: one of the two sides sees the other's write. */
static void advance(struct side *s, uint32_t count, bool enough)
{
	atomic_store(&s->count, count);
	if (enough && atomic_load(&s->waiting))
		wake(s);
}

/* ---- the producer ------------------------------------------------------------ */

/* Waits until block `head` is free, then, once it had to sleep, until half
 * the ring is; false when the consumer asked to stop. */
static bool wait_room(struct pipe *p, uint32_t head)
{
	for (int i = 0; i < SPINS; i++) {
		uint32_t tail = atomic_load_explicit(&p->tail.count, memory_order_acquire);
		if (head - tail < p->n_blocks)
			return !atomic_load_explicit(&p->stop, memory_order_relaxed);
		cpu_relax();
	}
	for (;;) {
		uint32_t w = atomic_load(&p->tail.wake);
		atomic_store(&p->tail.waiting, 1);
		uint32_t tail = atomic_load(&p->tail.count);
		if (atomic_load(&p->stop) || head - tail <= p->n_blocks / 2) {
			atomic_store(&p->tail.waiting, 0);
			return !atomic_load(&p->stop);
		}
		futex_wait(&p->tail.wake, w);
	}
}

/* Deletes the events that hold libyaml's allocations; empties b. */
static void clear_block(struct pipe_block *b)
{
	for (uint32_t i = 0; i < b->n_full; i++)
		yaml_event_delete(&b->full[i]);
	b->n = b->n_full = b->text_len = 0;
	b->last = b->failed = false;
}

/* Stores e in b compactly if it can be, deleting it; false if not. */
static bool store_compact(struct pipe_block *b, struct pipe_event *pe, yaml_event_t *e)
{
	switch (e->type) {
	case YAML_SCALAR_EVENT: {
		if (e->data.scalar.anchor || e->data.scalar.tag ||
		    e->data.scalar.length > PIPE_COPY_MAX)
			return false;
		uint32_t n = (uint32_t)e->data.scalar.length, off = b->text_len;
		pe->off = off;
		pe->length = n;
		pe->style = (uint8_t)e->data.scalar.style;
		pe->flags = (e->data.scalar.plain_implicit ? PIPE_IMPLICIT : 0) |
			    (e->data.scalar.quoted_implicit ? PIPE_QUOTED_IMPLICIT : 0);
		memcpy(b->text + off, e->data.scalar.value, n);
		b->text[off + n] = '\0';
		b->text_len = off + n + 1;
		yaml_event_delete(e); /* frees the value */
		return true;
	}
	case YAML_MAPPING_START_EVENT:
	case YAML_SEQUENCE_START_EVENT:
		/* Same layout for both: anchor, tag, implicit, style. Without
		 * anchor and tag, the event holds no allocation to delete. */
		if (e->data.mapping_start.anchor || e->data.mapping_start.tag)
			return false;
		pe->style = (uint8_t)e->data.mapping_start.style;
		pe->flags = e->data.mapping_start.implicit ? PIPE_IMPLICIT : 0;
		return true;
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		pe->style = 0;
		pe->flags = 0;
		return true;
	default:
		return false;
	}
}

static bool stopped(struct pipe *p)
{
	return atomic_load_explicit(&p->stop, memory_order_relaxed);
}

/* Waits for room and makes the next block the one being filled; false
 * when the consumer asked to stop. */
static bool next_block(struct pipe *p)
{
	if (!wait_room(p, p->published))
		return false;
	p->filling = &p->blocks[p->published & (p->n_blocks - 1)];
	clear_block(p->filling);
	return true;
}

/* Publishes the block being filled; wakes a sleeping consumer when it
 * has enough to do, or `now`. */
static void publish(struct pipe *p, bool now)
{
	uint32_t head = ++p->published;
	uint32_t tail = atomic_load_explicit(&p->tail.count, memory_order_relaxed);
	advance(&p->head, head, now || p->filling->last || head - tail >= p->n_blocks / 4);
}

/* The parser's read callback while the pipe runs: the loader's, unless
 * the consumer stopped; publishes the events parsed so far when the input
 * yields none for long (see the top of the file). */
static int pipe_read(void *data, unsigned char *buffer, size_t size, size_t *size_read)
{
	struct pipe *p = data;
	if (stopped(p))
		return 0;
	if (p->since_event > SPARSE_BYTES && p->filling->n) {
		publish(p, true);
		if (!next_block(p))
			return 0;
	}
	int r = p->read(p->read_data, buffer, size, size_read);
	if (r)
		p->since_event += *size_read;
	return r;
}

/* Parses events into the block being filled until it is full (of events,
 * texts or whole events), or the stream ended or failed (then ->last). The
 * block being filled may change inside yaml_parser_parse(): pipe_read(). */
static void fill(struct pipe *p)
{
	for (;;) {
		struct pipe_block *b = p->filling;
		if (b->n >= PIPE_EVENTS || b->n_full >= PIPE_FULLS ||
		    PIPE_TEXT - b->text_len <= PIPE_COPY_MAX)
			return;
		yaml_event_t e;
		p->since_event = 0;
		if (!yaml_parser_parse(p->parser, &e)) {
			/* Once stopped, p->filling may be a block published
			 * already: nothing touches it any more. */
			if (!stopped(p))
				p->filling->last = p->filling->failed = true;
			return;
		}
		b = p->filling;
		struct pipe_event *pe = &b->ev[b->n++];
		pe->type = (uint8_t)e.type;
		pe->index = (uint32_t)e.start_mark.index;
		pe->line = (uint32_t)e.start_mark.line;
		pe->column = (uint32_t)e.start_mark.column;
		if (e.type == YAML_STREAM_END_EVENT)
			b->last = true;
		if (!store_compact(b, pe, &e)) {
			pe->flags = PIPE_FULL;
			pe->off = b->n_full;
			b->full[b->n_full++] = e;
		}
		if (b->last)
			return;
	}
}

static void *produce(void *arg)
{
	struct pipe *p = arg;
	if (!next_block(p))
		return NULL;
	for (;;) {
		fill(p);
		if (stopped(p))
			return NULL;
		bool last = p->filling->last;
		publish(p, false);
		if (last || !next_block(p))
			return NULL;
	}
}

/* ---- the consumer ------------------------------------------------------------- */

/* Waits until block `taken` is published. */
static void wait_data(struct pipe *p)
{
	for (int i = 0; i < SPINS; i++) {
		if (atomic_load_explicit(&p->head.count, memory_order_acquire) != p->taken)
			return;
		cpu_relax();
	}
	for (;;) {
		uint32_t w = atomic_load(&p->head.wake);
		atomic_store(&p->head.waiting, 1);
		if (atomic_load(&p->head.count) != p->taken) {
			atomic_store(&p->head.waiting, 0);
			return;
		}
		futex_wait(&p->head.wake, w);
	}
}

bool pipe_next_block(struct pipe *p, struct pipe_cursor *c, yaml_event_t *ev)
{
	for (;;) {
		if (p->cur && p->cur->last) {
			/* Like yaml_parser_parse() past the end or an error. */
			memset(ev, 0, sizeof(*ev));
			return !p->cur->failed;
		}
		if (p->cur) {
			uint32_t head = atomic_load_explicit(&p->head.count, memory_order_relaxed);
			advance(&p->tail, p->taken, head - p->taken <= p->n_blocks / 2);
		}
		wait_data(p);
		struct pipe_block *b = &p->blocks[p->taken++ & (p->n_blocks - 1)];
		p->cur = b;
		*c = (struct pipe_cursor){b->ev, b->ev + b->n, b->text, b->text_len, b->full};
		if (c->at < c->end) {
			pipe_expand(c, c->at++, ev);
			return true;
		}
	}
}

/* ---- life -------------------------------------------------------------------------- */

int pipe_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	/* The thread takes no signal: they stay the application's business,
	 * in the threads it chose. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -r;
}

int pipe_start(struct pipe **out, yaml_parser_t *parser, uint64_t size)
{
	struct pipe *p = aligned_alloc(64, sizeof(*p));
	int r = -ENOMEM;
	if (!p)
		return r;
	memset(p, 0, sizeof(*p));
	p->parser = parser;
	p->read = parser->read_handler;
	p->read_data = parser->read_handler_data;
	p->n_blocks = MIN_BLOCKS;
	while (p->n_blocks < MAX_BLOCKS && (uint64_t)p->n_blocks * 2 * INPUT_PER_BLOCK <= size)
		p->n_blocks *= 2;
	p->blocks = calloc(p->n_blocks, sizeof(*p->blocks));
	if (!p->blocks)
		goto fail;
	parser->read_handler = pipe_read;
	parser->read_handler_data = p;
	r = pipe_thread_start(&p->thread, produce, p);
	if (r) {
		parser->read_handler = p->read;
		parser->read_handler_data = p->read_data;
		goto fail;
	}
	*out = p;
	return 0;
fail:
	free(p->blocks);
	free(p);
	return r;
}

void pipe_end(struct pipe *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, true);
	wake(&p->tail);
	pthread_join(p->thread, NULL);
	for (uint32_t i = 0; i < p->n_blocks; i++)
		clear_block(&p->blocks[i]);
	free(p->blocks);
	free(p);
}
