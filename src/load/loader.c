/* loader.c: STUB, to be replaced by the real loader. */
#include <errno.h>
#include "load/model.h"
int dagrun_workflow_load(const char *path, dagrun_workflow **out, dagrun_diags *diags)
{
	(void)path; (void)out; (void)diags;
	return -ENOSYS;
}
int dagrun_workflow_load_buffer(const char *name, const char *data, size_t len,
				dagrun_workflow **out, dagrun_diags *diags)
{
	(void)name; (void)data; (void)len; (void)out; (void)diags;
	return -ENOSYS;
}
