/* err.c — text for vigil's error codes. */
#include "err.h"

#include <string.h>

const char *vigil_strerror(int err)
{
    switch (err) {
    case VIGIL_OK: return "success";
    case VIGIL_EFULL: return "container full";
    case VIGIL_ECAPTURE: return "capture error";
    default: break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}
