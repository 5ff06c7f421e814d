/* rundoc.c: what the commands drawing a recorded run share (rundoc.h).
 *
 * Invariant: a command's output file is either its complete output or
 * not there at all (written under a temporary name, renamed at the end).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli/hist.h"
#include "cli/rundoc.h"

int cli_rundoc(const char *cmd, const char *state, const char *ref,
	       const struct report_rundoc_opts *o, json_t **doc)
{
	const char *dir = cli_state_dir(state);
	struct store *s = NULL;
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	char *warn = NULL, *err = NULL;
	*doc = NULL;
	int r = hist_open(cmd, dir, false, &s);
	if (r == -ENOENT) {
		hist_none(cmd, dir);
		return EXIT_USAGE;
	}
	if (r < 0)
		return EXIT_INTERNAL;
	int status = hist_find(cmd, s, ref, &mem, &ri);
	if (status != EXIT_OK)
		goto out;
	if ((r = report_rundoc_from_store(s, &ri, o, doc, &warn, &err)) < 0) {
		hist_say(cmd, err ? err : strerror(-r));
		status = EXIT_INTERNAL;
		goto out;
	}
	/* one line each */
	for (char *line = warn, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		struct buf b = BUF_INIT;
		if (buf_adds(&b, "warning: ") == 0 && buf_adds(&b, line) == 0)
			hist_say(cmd, b.data);
		buf_free(&b);
	}
out:
	free(warn);
	free(err);
	arena_free(&mem);
	store_close(s);
	return status;
}

int cli_out_open(const char *cmd, const char *path, struct cli_out *o)
{
	memset(o, 0, sizeof(*o));
	if (!path || !strcmp(path, "-")) {
		o->f = stdout;
		return 0;
	}
	o->path = path;
	if (asprintf(&o->tmp, "%s.tmp-XXXXXX", path) < 0) {
		o->tmp = NULL;
		fprintf(stderr, "dagrun %s: out of memory\n", cmd);
		return -1;
	}
	int fd = mkstemp(o->tmp);
	if (fd < 0) {
		struct buf b = BUF_INIT;
		buf_printf(&b, "%s: %s", path, strerror(errno));
		hist_say(cmd, b.data ? b.data : path);
		buf_free(&b);
		free(o->tmp);
		o->tmp = NULL;
		return -1;
	}
	/* a report is a file like any other: the umask's mode, not 0600 */
	mode_t um = umask(0);
	umask(um);
	if (fchmod(fd, 0666 & ~um) < 0 || !(o->f = fdopen(fd, "w"))) {
		int e = errno;
		close(fd);
		unlink(o->tmp);
		struct buf b = BUF_INIT;
		buf_printf(&b, "%s: %s", path, strerror(e));
		hist_say(cmd, b.data ? b.data : path);
		buf_free(&b);
		free(o->tmp);
		o->tmp = NULL;
		return -1;
	}
	return 0;
}

int cli_out_close(const char *cmd, struct cli_out *o, bool ok)
{
	int e = 0;
	if (!o->f)
		return 0;
	if (o->f == stdout) {
		if (fflush(stdout) != 0 && ok) {
			fprintf(stderr, "dagrun %s: cannot write: %s\n", cmd, strerror(errno));
			return -1;
		}
		return ok ? 0 : -1;
	}
	if (fclose(o->f) != 0)
		e = errno;
	o->f = NULL;
	if (ok && !e && rename(o->tmp, o->path) < 0)
		e = errno;
	if (!ok || e)
		unlink(o->tmp);
	if (ok && e) {
		struct buf b = BUF_INIT;
		buf_printf(&b, "%s: %s", o->path, strerror(e));
		hist_say(cmd, b.data ? b.data : o->path);
		buf_free(&b);
	}
	free(o->tmp);
	o->tmp = NULL;
	return ok && !e ? 0 : -1;
}

unsigned cli_term_width(FILE *f)
{
	const char *c = getenv("COLUMNS");
	if (c && *c) {
		char *end;
		unsigned long v = strtoul(c, &end, 10);
		if (!*end && v >= 40 && v <= 10000)
			return (unsigned)v;
	}
	struct winsize ws;
	if (isatty(fileno(f)) && ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		return ws.ws_col;
	return 100;
}

bool cli_names_file(const char *arg)
{
	struct stat sb;
	return arg && stat(arg, &sb) == 0;
}

int cli_run_out_args(const char *cmd, const char *usage, int argc, char **argv,
		     const char **state, const char **path, const char **ref)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"output", required_argument, NULL, 'o'},
		{"state", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	int c;
	*state = *path = *ref = NULL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return EXIT_OK;
		case 'o': *path = optarg; break;
		case 'S': *state = optarg; break;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if ((*state && !**state) || (*path && !**path)) {
		bool st = *state && !**state;
		fprintf(stderr, "dagrun %s: --%s takes a %s\n", cmd, st ? "state" : "output",
			st ? "directory" : "file");
		return EXIT_USAGE;
	}
	*ref = argv[optind];
	return -1;
}
