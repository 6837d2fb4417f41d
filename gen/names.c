/* names.c — host names under reserved documentation domains. */
#include "names.h"

#include <stdio.h>
#include <string.h>

static const char *const domains[] = {
    "example.com",        "example.net",      "example.org",     "shop.example",
    "video.example",      "mail.example.com", "corp.test",       "news.example.org",
    "cloud.example.net",  "files.test",       "social.example",  "maps.example.com",
    "updates.example.org", "ads.example.net", "game.example",    "bank.test",
};
#define N_DOMAINS (sizeof domains / sizeof domains[0])

static const char *const prefixes[] = {
    "www", "api", "cdn", "static", "img", "login", "assets", "edge",
    "m",   "app", "media", "telemetry", "auth", "push", "dl", "ws",
};
#define N_PREFIXES (sizeof prefixes / sizeof prefixes[0])

void names_host(struct rng *r, char *out, size_t cap)
{
    /* Popularity: a Pareto draw over the domain list puts most lookups on
     * the first few domains and leaves a long tail. */
    size_t di = (size_t)rng_pareto(r, 1.0, 1.1) - 1;
    if (di >= N_DOMAINS)
        di = (size_t)rng_below(r, N_DOMAINS);
    const char *dom = domains[di];
    const char *pre = prefixes[rng_below(r, N_PREFIXES)];
    switch (rng_below(r, 4)) {
    case 0:
        snprintf(out, cap, "%s.%s", pre, dom);
        break;
    case 1:
        snprintf(out, cap, "%s%u.%s", pre, (unsigned)rng_below(r, 20), dom);
        break;
    case 2:
        snprintf(out, cap, "%s.%s.%s", pre, prefixes[rng_below(r, N_PREFIXES)], dom);
        break;
    default:
        snprintf(out, cap, "www.%s", dom);
        break;
    }
}

const char *names_registered(const char *host)
{
    for (size_t i = 0; i < N_DOMAINS; i++) {
        size_t hl = strlen(host), dl = strlen(domains[i]);
        if (hl >= dl && strcmp(host + hl - dl, domains[i]) == 0 &&
            (hl == dl || host[hl - dl - 1] == '.'))
            return host + hl - dl;
    }
    const char *dot = strchr(host, '.');
    return dot ? dot + 1 : host;
}
