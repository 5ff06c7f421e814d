/* fuzz_loader.c: libFuzzer target for the workflow loader.
 *
 * Any input must either load (and then be freed) or be rejected with
 * diagnostics; never crash, leak, hang or trip a sanitizer. Built by run.sh
 * (clang -fsanitize=fuzzer,address,undefined), not by meson.
 */
#include <stddef.h>
#include <stdint.h>

#include "dagrun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	if (!d)
		return 0;
	if (dagrun_workflow_load_buffer("fuzz.yaml", (const char *)data, size, &wf, d) == 0)
		dagrun_workflow_free(wf);
	dagrun_diags_free(d);
	return 0;
}
