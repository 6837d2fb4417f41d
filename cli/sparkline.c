/* sparkline.c — a series as one line of text for the terminal (see
 * analyst.h): Unicode block elements when the locale is UTF-8, ASCII
 * otherwise, so a log file or an old console never shows mojibake. */
#include "analyst.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool says_utf8(const char *v)
{
    if (!v)
        return false;
    const char *dot = strchr(v, '.');
    const char *cs = dot ? dot + 1 : v;
    return strncasecmp(cs, "UTF-8", 5) == 0 || strncasecmp(cs, "utf8", 4) == 0;
}

bool sparkline_utf8(void)
{
    /* POSIX precedence: the first one set and non-empty decides */
    static const char *const vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return says_utf8(v);
    }
    return false;
}

char *sparkline(char *out, size_t len, const double *v, size_t n, size_t width, bool utf8)
{
    static const char *const blocks[8] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                          "\u2585", "\u2586", "\u2587", "\u2588"};
    static const char ascii[8] = {'_', '.', '-', ':', '=', '+', '*', '#'};
    size_t used = 0, cols = n < width ? n : width;
    double top = 0;

    if (len == 0)
        return out;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (v[i] > top)
            top = v[i];
    for (size_t c = 0; c < cols; c++) {
        /* values [c*n/cols, (c+1)*n/cols) share this column: keep their peak */
        size_t a = c * n / cols, b = (c + 1) * n / cols;
        double peak = 0;
        for (size_t i = a; i < b; i++)
            if (v[i] > peak)
                peak = v[i];
        unsigned level = top > 0 ? (unsigned)(peak / top * 7.999) : 0;
        if (level > 7)
            level = 7;
        const char *ch = utf8 ? blocks[level] : (const char[2]){ascii[level], '\0'};
        size_t l = strlen(ch);
        if (used + l + 1 > len)
            break;
        memcpy(out + used, ch, l);
        used += l;
        out[used] = '\0';
    }
    return out;
}
