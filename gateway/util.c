/*
 * util.c - small helpers shared by the admin commands (cert, ra): opening the configured
 * store, and the text forms of bytes and times they print.
 *
 * DESIGN: each command runs in its own short-lived process; nothing here is shared between
 * threads.
 */
#include "cg_config.h"
#include "cg_err.h"
#include "cg_store.h"
#include "gateway_local.h"

#include <time.h>

int gw_open_store(const char *what, const char *config_path, struct cg_config **cfg,
                  struct cg_store **st)
{
    int status = gw_load_config(config_path, cfg);
    if (status != 0)
        return status;
    struct cg_store_opts so = {(*cfg)->store_path, (*cfg)->store_map_size_mb, (*cfg)->store_sync,
                               0};
    int rc = cg_store_open(&so, st);
    if (rc != CG_OK) {
        gw_err("%s: cannot open the store at %s: %s", what, (*cfg)->store_path, cg_strerror(rc));
        return EXIT_RUNTIME;
    }
    return 0;
}

void gw_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void gw_iso_time(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
