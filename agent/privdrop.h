/* privdrop.h — giving up root once the capture is open.
 *
 * Must run before any thread is started, so every thread runs unprivileged
 * (setuid() changes only the calling thread at the kernel level; glibc
 * broadcasts it, but starting threads later makes it certain). */
#ifndef VIGIL_PRIVDROP_H
#define VIGIL_PRIVDROP_H

/* Switches to user `name` (its primary group and supplementary groups).
 * Returns 0, or a negative VIGIL_E* code with a message logged. Verifies
 * that root cannot be regained. */
int privdrop_to_user(const char *name);

#endif
