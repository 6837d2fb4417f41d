/* err.h — vigil's error codes.
 *
 * Functions return 0 on success or a negative VIGIL_E* code. The codes are
 * negative errno values so system errors pass through unchanged; vigil-only
 * conditions use values above the errno range. */
#ifndef VIGIL_ERR_H
#define VIGIL_ERR_H

#include <errno.h>

#define VIGIL_OK 0
#define VIGIL_ENOMEM (-ENOMEM)
#define VIGIL_EINVAL (-EINVAL)
#define VIGIL_EAGAIN (-EAGAIN)
#define VIGIL_EIO (-EIO)
#define VIGIL_ENOENT (-ENOENT)
#define VIGIL_ERANGE (-ERANGE)
#define VIGIL_EBADMSG (-EBADMSG)   /* malformed input from a peer or a file */
#define VIGIL_ENOTSUP (-ENOTSUP)
#define VIGIL_EFULL (-4096)        /* a bounded container is full */
#define VIGIL_ECAPTURE (-4097)     /* libpcap reported an error */

/* Returns a static string describing a VIGIL_E* code (or a negative errno). */
const char *vigil_strerror(int err);

#endif
