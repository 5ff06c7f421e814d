/* bare_yaml.c: the floor for reading YAML: a bare libyaml event loop over
 * a file, building nothing. `bare_yaml FILE` exits 0 when the whole stream
 * parsed, 1 on a syntax or I/O error. Compare with `dagrun validate FILE`. */
#include <stdio.h>
#include <yaml.h>

int main(int argc, char **argv)
{
	FILE *f = argc == 2 ? fopen(argv[1], "rb") : NULL;
	if (!f) {
		fprintf(stderr, "usage: bare_yaml FILE (a readable YAML file)\n");
		return 1;
	}
	yaml_parser_t p;
	yaml_event_t ev;
	int done = 0, ok = 1;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_file(&p, f);
	while (ok && !done) {
		ok = yaml_parser_parse(&p, &ev);
		done = ok && ev.type == YAML_STREAM_END_EVENT;
		if (ok)
			yaml_event_delete(&ev);
	}
	if (!ok)
		fprintf(stderr, "%s:%zu: %s\n", argv[1], p.problem_mark.line + 1, p.problem);
	yaml_parser_delete(&p);
	fclose(f);
	return ok ? 0 : 1;
}
