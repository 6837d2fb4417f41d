/* privdrop.c — setgroups/setgid/setuid, in that order, and a check. */
#include "privdrop.h"

#include "err.h"
#include "log.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

int privdrop_to_user(const char *name)
{
    errno = 0;
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        log_err("--user %s: no such user%s%s", name, errno ? ": " : "",
                errno ? strerror(errno) : "");
        return VIGIL_ENOENT;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        int e = errno;
        log_err("cannot switch to user %s: %s", name, strerror(e));
        return -e;
    }
    if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        log_err("privileges could be regained after switching to %s; refusing to go on", name);
        return VIGIL_EINVAL;
    }
    return 0;
}
