/* svg.c — small charts as inline SVG for the HTML report (see analyst.h):
 * stacked areas, lines, share bars with the cumulative line, an event
 * timeline. Drawn by vigil itself so the report needs no script, font or
 * fetch; every text that came from the network (application labels, host
 * names, alert summaries) goes through svg_escape.
 *
 * Each chart says what it drew (data-chart, data-series, data-points on the
 * <svg>, one <polyline class="series"> per series with exactly its
 * points), which is what the headless-browser test counts.
 *
 * Non-goals: interactivity, logarithmic axes, more than a legend's worth of
 * series (the report groups the rest as "other"). */
#include "analyst.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define W 920.0
#define H 250.0
#define ML 84.0 /* room for the y labels */
#define MR 16.0
#define MT 34.0 /* title and legend */
#define MB 28.0 /* time labels */
#define PW (W - ML - MR)
#define PH (H - MT - MB)

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
                                      "#86bcb6", "#d37295", "#fabfd2", "#8cd17d", "#b6992d",
                                      "#499894", "#79706e"};
#define NPALETTE (sizeof palette / sizeof palette[0])

/* ---- escaping ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), 0 when invalid (overlong,
 * surrogate, beyond U+10FFFF, truncated). */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4
                                                                                          : 0;
    }
    return 0;
}

size_t svg_escape_buf(char *out, size_t len, const char *s)
{
    size_t used = 0;
    if (len == 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        char tmp[8];
        const char *piece = tmp;
        size_t n = utf8_len(p), pl;
        if (n == 1) {
            switch (*p) {
            case '&': piece = "&amp;"; break;
            case '<': piece = "&lt;"; break;
            case '>': piece = "&gt;"; break;
            case '"': piece = "&quot;"; break;
            case '\'': piece = "&#39;"; break;
            default:
                if (*p < 0x20 || *p == 0x7f)
                    piece = "\xef\xbf\xbd"; /* U+FFFD */
                else {
                    tmp[0] = (char)*p;
                    tmp[1] = '\0';
                }
            }
            p++;
        } else if (n == 0) {
            piece = "\xef\xbf\xbd";
            p++;
        } else {
            memcpy(tmp, p, n);
            tmp[n] = '\0';
            p += n;
        }
        pl = strlen(piece);
        if (used + pl + 1 > len)
            break;
        memcpy(out + used, piece, pl);
        used += pl;
    }
    out[used] = '\0';
    return used;
}

void svg_escape(FILE *fp, const char *s)
{
    char buf[64];
    /* piece by piece: cut the input at character boundaries */
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        char in[24];
        size_t k = 0;
        while (*p && k < 16) {
            size_t n = utf8_len(p);
            if (n == 0)
                n = 1;
            memcpy(in + k, p, n);
            k += n;
            p += n;
        }
        in[k] = '\0';
        svg_escape_buf(buf, sizeof buf, in);
        fputs(buf, fp);
    }
}

/* ---- frames -------------------------------------------------------------------- */

static void fmt_value(double v, const char *unit, char *out, size_t len)
{
    if (unit && strcmp(unit, "bit/s") == 0)
        output_format_rate(v, out, len);
    else if (unit && strcmp(unit, "%") == 0)
        snprintf(out, len, "%.2f%%", v);
    else
        snprintf(out, len, "%.0f %s", v, unit ? unit : "");
}

static void fmt_time(int64_t ns, char *out, size_t len)
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, len, "%m-%d %H:%M", &tm) == 0)
        snprintf(out, len, "?");
}

/* A round top for the y axis: 1, 2 or 5 times a power of ten. */
static double nice_top(double v)
{
    if (v <= 0)
        return 1;
    double p = 1;
    while (p * 10 <= v)
        p *= 10;
    while (p > v)
        p /= 10;
    static const double mult[] = {1, 2, 5, 10};
    for (size_t i = 0; i < sizeof mult / sizeof mult[0]; i++)
        if (p * mult[i] >= v)
            return p * mult[i];
    return p * 10;
}

struct frame {
    int64_t t0, t1;
    double top;
};

static double fx(const struct frame *f, int64_t t)
{
    if (f->t1 <= f->t0)
        return ML;
    return ML + PW * (double)(t - f->t0) / (double)(f->t1 - f->t0);
}

static double fy(const struct frame *f, double v)
{
    if (v < 0)
        v = 0;
    return MT + PH - PH * (v / f->top);
}

static void open_svg(FILE *fp, const char *id, const char *title, size_t series, size_t points)
{
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 %.0f "
                "%.0f\" width=\"%.0f\" height=\"%.0f\" data-chart=\"",
            W, H, W, H);
    svg_escape(fp, id);
    fprintf(fp, "\" data-series=\"%zu\" data-points=\"%zu\" role=\"img\">\n<title>", series,
            points);
    svg_escape(fp, title);
    fputs("</title>\n<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n", fp);
    fputs("<text x=\"8\" y=\"18\" class=\"ctitle\">", fp);
    svg_escape(fp, title);
    fputs("</text>\n", fp);
}

static void axes(FILE *fp, const struct frame *f, const char *unit, bool time_axis)
{
    char lab[64];
    for (int i = 0; i <= 4; i++) {
        double v = f->top * i / 4.0, y = fy(f, v);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n", ML,
                y, ML + PW, y);
        fmt_value(v, unit, lab, sizeof lab);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"ylab\">", ML - 6, y + 4);
        svg_escape(fp, lab);
        fputs("</text>\n", fp);
    }
    if (!time_axis)
        return;
    for (int i = 0; i <= 4; i++) {
        int64_t t = f->t0 + (f->t1 - f->t0) / 4 * i;
        fmt_time(t, lab, sizeof lab);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"xlab\" text-anchor=\"%s\">%s</text>\n",
                fx(f, t), H - 8, i == 0 ? "start" : i == 4 ? "end" : "middle", lab);
    }
}

static void legend(FILE *fp, const struct svg_series *s, size_t ns)
{
    double x = W - MR;
    /* right to left so the first series ends up leftmost */
    for (size_t k = ns; k-- > 0;) {
        char name[96];
        svg_escape_buf(name, sizeof name, s[k].name && *s[k].name ? s[k].name : "(none)");
        x -= 26 + 7.0 * (double)strlen(s[k].name && *s[k].name ? s[k].name : "(none)");
        if (x < 200)
            break;
        fprintf(fp, "<rect x=\"%.1f\" y=\"9\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                    "<text x=\"%.1f\" y=\"18\" class=\"legend\">%s</text>\n",
                x, palette[k % NPALETTE], x + 14, name);
    }
}

static void polyline(FILE *fp, const struct frame *f, const struct svg_axis *ax, const double *y,
                     const char *name, const char *colour, const char *extra)
{
    fputs("<polyline class=\"series\" data-name=\"", fp);
    svg_escape(fp, name ? name : "");
    fprintf(fp, "\" data-points=\"%zu\" fill=\"none\" stroke=\"%s\" %s points=\"", ax->n, colour,
            extra);
    for (size_t i = 0; i < ax->n; i++)
        fprintf(fp, "%s%.1f,%.1f", i ? " " : "", fx(f, ax->t[i]), fy(f, y[i]));
    fputs("\"/>\n", fp);
}

static struct frame time_frame(const struct svg_axis *ax, double max)
{
    struct frame f = {0, 0, nice_top(max)};
    if (ax->n) {
        f.t0 = ax->t[0];
        f.t1 = ax->t[ax->n - 1];
    }
    if (f.t1 <= f.t0)
        f.t1 = f.t0 + 1;
    return f;
}

/* ---- charts ------------------------------------------------------------------ */

void svg_stacked(FILE *fp, const char *id, const char *title, const struct svg_axis *ax,
                 const struct svg_series *s, size_t ns)
{
    double max = 0;
    double *below = calloc(ax->n ? ax->n : 1, sizeof *below);
    double *above = calloc(ax->n ? ax->n : 1, sizeof *above);
    if (!below || !above) {
        free(below);
        free(above);
        return;
    }
    for (size_t i = 0; i < ax->n; i++) {
        double sum = 0;
        for (size_t k = 0; k < ns; k++)
            sum += s[k].v[i];
        if (sum > max)
            max = sum;
    }
    struct frame f = time_frame(ax, max);
    open_svg(fp, id, title, ns, ax->n);
    axes(fp, &f, ax->unit, true);
    for (size_t k = 0; k < ns; k++) {
        for (size_t i = 0; i < ax->n; i++)
            above[i] = below[i] + (s[k].v[i] > 0 ? s[k].v[i] : 0);
        /* the band: its top forward, the band below's top back */
        fprintf(fp, "<path class=\"band\" fill=\"%s\" fill-opacity=\"0.55\" d=\"",
                palette[k % NPALETTE]);
        for (size_t i = 0; i < ax->n; i++)
            fprintf(fp, "%s%.1f,%.1f", i ? " L" : "M", fx(&f, ax->t[i]), fy(&f, above[i]));
        for (size_t i = ax->n; i-- > 0;)
            fprintf(fp, " L%.1f,%.1f", fx(&f, ax->t[i]), fy(&f, below[i]));
        fputs(" Z\"/>\n", fp);
        polyline(fp, &f, ax, above, s[k].name, palette[k % NPALETTE], "stroke-width=\"1.2\"");
        memcpy(below, above, ax->n * sizeof *below);
    }
    legend(fp, s, ns);
    fputs("</svg>\n", fp);
    free(below);
    free(above);
}

void svg_lines(FILE *fp, const char *id, const char *title, const struct svg_axis *ax,
               const struct svg_series *s, size_t ns, double threshold)
{
    double max = threshold > 0 ? threshold : 0;
    for (size_t k = 0; k < ns; k++)
        for (size_t i = 0; i < ax->n; i++)
            if (s[k].v[i] > max)
                max = s[k].v[i];
    struct frame f = time_frame(ax, max);
    open_svg(fp, id, title, ns, ax->n);
    axes(fp, &f, ax->unit, true);
    if (threshold > 0)
        fprintf(fp, "<line class=\"threshold\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                    "stroke=\"#c00\" stroke-dasharray=\"6 4\"/>\n",
                ML, fy(&f, threshold), ML + PW, fy(&f, threshold));
    for (size_t k = 0; k < ns; k++)
        polyline(fp, &f, ax, s[k].v, s[k].name, palette[k % NPALETTE], "stroke-width=\"1.8\"");
    legend(fp, s, ns);
    fputs("</svg>\n", fp);
}

void svg_share(FILE *fp, const char *id, const char *title, const char *const *labels,
               const double *share, const double *cumulative, size_t n, double cut)
{
    double h = MT + 22.0 * (double)(n ? n : 1) + 24;
    double x0 = 200, pw = W - x0 - 80;
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 %.0f "
                "%.0f\" width=\"%.0f\" height=\"%.0f\" data-chart=\"",
            W, h, W, h);
    svg_escape(fp, id);
    fprintf(fp, "\" data-series=\"1\" data-points=\"%zu\" role=\"img\">\n<title>", n);
    svg_escape(fp, title);
    fputs("</title>\n<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
          "<text x=\"8\" y=\"18\" class=\"ctitle\">", fp);
    svg_escape(fp, title);
    fputs("</text>\n", fp);
    for (size_t i = 0; i < n; i++) {
        double y = MT + 22.0 * (double)i;
        char lab[160];
        svg_escape_buf(lab, sizeof lab, labels[i] && *labels[i] ? labels[i] : "(unlabelled)");
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"ylab\">%s</text>\n", x0 - 8, y + 14,
                lab);
        fprintf(fp, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"16\" "
                    "fill=\"%s\"/>\n",
                x0, y + 2, pw * share[i], palette[i % NPALETTE]);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"legend\">%.1f%%</text>\n",
                x0 + pw * share[i] + 4, y + 14, share[i] * 100.0);
    }
    fprintf(fp, "<polyline class=\"series\" data-name=\"cumulative\" data-points=\"%zu\" "
                "fill=\"none\" stroke=\"#333\" stroke-width=\"1.5\" points=\"", n);
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "%s%.1f,%.1f", i ? " " : "", x0 + pw * cumulative[i],
                MT + 22.0 * (double)i + 10);
    fputs("\"/>\n", fp);
    fprintf(fp, "<line class=\"cut\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#c00\" stroke-dasharray=\"6 4\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" class=\"legend\">%.0f%%</text>\n",
            x0 + pw * cut, MT - 4, x0 + pw * cut, h - 20, x0 + pw * cut + 4, h - 8, cut * 100);
    fputs("</svg>\n", fp);
}

void svg_timeline(FILE *fp, const char *id, const char *title, int64_t t0, int64_t t1,
                  const struct svg_event *e, size_t n, const char *empty_note)
{
    struct frame f = {t0, t1 > t0 ? t1 : t0 + 1, 1};
    size_t rows = n ? (n < 12 ? n : 12) : 1;
    double h = MT + 18.0 * (double)rows + MB + 6;
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 %.0f "
                "%.0f\" width=\"%.0f\" height=\"%.0f\" data-chart=\"",
            W, h, W, h);
    svg_escape(fp, id);
    fprintf(fp, "\" data-series=\"%d\" data-points=\"%zu\" role=\"img\">\n<title>", n ? 1 : 0, n);
    svg_escape(fp, title);
    fputs("</title>\n<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
          "<text x=\"8\" y=\"18\" class=\"ctitle\">", fp);
    svg_escape(fp, title);
    fputs("</text>\n", fp);
    fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n", ML,
            h - MB, ML + PW, h - MB);
    for (int i = 0; i <= 4; i++) {
        char lab[32];
        int64_t t = f.t0 + (f.t1 - f.t0) / 4 * i;
        fmt_time(t, lab, sizeof lab);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"xlab\" text-anchor=\"%s\">%s</text>\n",
                fx(&f, t), h - 8, i == 0 ? "start" : i == 4 ? "end" : "middle", lab);
    }
    if (n == 0) {
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"note\">", ML + PW / 2, MT + 12);
        svg_escape(fp, empty_note);
        fputs("</text>\n", fp);
    }
    for (size_t i = 0; i < n; i++) {
        int64_t a = e[i].t0 < f.t0 ? f.t0 : e[i].t0, b = e[i].t1 > f.t1 ? f.t1 : e[i].t1;
        double x = fx(&f, a), w = fx(&f, b) - x, y = MT + 18.0 * (double)(i % rows);
        const char *colour = strcmp(e[i].level ? e[i].level : "", "high") == 0     ? "#d62728"
                             : strcmp(e[i].level ? e[i].level : "", "medium") == 0 ? "#ff7f0e"
                                                                                    : "#1f77b4";
        fprintf(fp, "<rect class=\"event\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"14\" "
                    "fill=\"%s\"><title>",
                x, y, w < 3 ? 3 : w, colour);
        svg_escape(fp, e[i].label ? e[i].label : "");
        fputs("</title></rect>\n", fp);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"legend\">", x + (w < 3 ? 3 : w) + 4,
                y + 11);
        svg_escape(fp, e[i].label ? e[i].label : "");
        fputs("</text>\n", fp);
    }
    fputs("</svg>\n", fp);
}
