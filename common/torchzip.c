/* torchzip.c — placeholder until the torch reader lands. */
#include "tfile.h"
#include "pickle.h"

sf_status sf_torch_read(sf_tfile *tf, sf_err *err) {
    return sf_fail(err, SF_E_UNSUPPORTED, "%s: torch zip files are not supported yet", tf->path);
}
void sf_py_free(sf_py *p) { (void)p; }
