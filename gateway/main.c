/*
 * main.c - the cmpgate command line: init, serve, check-config, ra, cert.
 *
 * DESIGN: parses the command words and the global --config option (or CMPGATE_CONFIG),
 * then hands over to one gw_* function per command. Every error is one line on stderr and
 * exit status 2 for usage or configuration problems, 1 for runtime failures.
 */
#include "cg_config.h"
#include "cg_core.h"
#include "cg_err.h"
#include "gateway_local.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] = "usage: cmpgate init [--demo] [--force] [--ca-key "
                            "ec-p256|ec-p384|rsa2048|rsa3072|ed25519] DIR\n"
                            "       cmpgate serve --config FILE\n"
                            "       cmpgate check-config --config FILE\n"
                            "       cmpgate ra addendentity USERNAME --dn DN [--password PW] "
                            "[--ca NAME]\n"
                            "                  [--eeprofile NAME] [--certprofile NAME] "
                            "[--status STATUS]\n"
                            "                  [--altname SANS] [--token TYPE] --config FILE\n"
                            "       cmpgate ra addendentity USERNAME [--password PW] DN [CA [TYPE "
                            "[TOKEN]]] --config FILE\n"
                            "       cmpgate ra setclearpwd USERNAME PASSWORD --config FILE\n"
                            "       cmpgate ra setendentitystatus USERNAME STATUS --config FILE\n"
                            "       cmpgate ra show USERNAME --config FILE\n"
                            "       cmpgate ra list --config FILE\n"
                            "       cmpgate ra delendentity USERNAME --config FILE\n"
                            "       cmpgate cert list [--user USERNAME] --config FILE\n"
                            "       cmpgate cert show SERIAL --config FILE\n"
                            "       cmpgate cert revoke SERIAL [--reason N] --config FILE\n"
                            "CMPGATE_CONFIG may stand in for --config.\n";

void gw_err(const char *fmt, ...)
{
    va_list ap;
    fputs("cmpgate: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int gw_load_config(const char *path, struct cg_config **out)
{
    char err[1024];
    *out = NULL;
    if (path == NULL) {
        gw_err("no configuration: give --config FILE or set CMPGATE_CONFIG");
        return EXIT_USAGE;
    }
    int rc = cg_config_load(path, out, err, sizeof(err));
    if (rc == CG_OK && (rc = cg_core_check_config(*out, err, sizeof(err))) != CG_OK) {
        cg_config_unref(*out);
        *out = NULL;
    }
    if (rc != CG_OK) {
        fprintf(stderr, "cmpgate: %s\n", err);
        return EXIT_USAGE;
    }
    return 0;
}

/* Removes "--config FILE" / "--config=FILE" from argv, wherever it is. */
static const char *take_config(int *argc, char **argv)
{
    const char *cfg = getenv("CMPGATE_CONFIG");
    for (int i = 1; i < *argc; i++) {
        int drop = 0;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < *argc) {
            cfg = argv[i + 1];
            drop = 2;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            cfg = argv[i] + 9;
            drop = 1;
        }
        if (drop) {
            memmove(&argv[i], &argv[i + drop], sizeof(char *) * (size_t)(*argc - i - drop + 1));
            *argc -= drop;
            i--;
        }
    }
    return cfg;
}

static int cmd_init(int argc, char **argv)
{
    int demo = 0, force = 0;
    const char *dir = NULL, *key = "ec-p256";
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--demo") == 0)
            demo = 1;
        else if (strcmp(argv[i], "--force") == 0)
            force = 1;
        else if (strcmp(argv[i], "--ca-key") == 0 && i + 1 < argc)
            key = argv[++i];
        else if (argv[i][0] == '-') {
            gw_err("init: unknown option %s", argv[i]);
            return EXIT_USAGE;
        } else if (dir == NULL)
            dir = argv[i];
        else {
            gw_err("init: more than one directory given");
            return EXIT_USAGE;
        }
    }
    if (dir == NULL) {
        gw_err("init: missing DIR");
        return EXIT_USAGE;
    }
    return gw_init(dir, demo, force, key);
}

/* AddressSanitizer must see OpenSSL's frees to report a use after one (see core/mem.c). */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_CACHE 0
#endif
#endif
#ifndef MEM_CACHE
#define MEM_CACHE 1
#endif

int main(int argc, char **argv)
{
    cg_mem_install(MEM_CACHE);
    const char *cfg = take_config(&argc, argv);
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "init") == 0)
        return cmd_init(argc, argv);
    if (strcmp(cmd, "serve") == 0) {
        if (argc != 2) {
            gw_err("serve: unexpected argument %s", argv[2]);
            return EXIT_USAGE;
        }
        return gw_serve(cfg);
    }
    if (strcmp(cmd, "check-config") == 0) {
        struct cg_config *c = NULL;
        if (argc != 2) {
            gw_err("check-config: unexpected argument %s", argv[2]);
            return EXIT_USAGE;
        }
        int rc = gw_load_config(cfg, &c);
        if (rc == 0)
            printf("%s: ok\n", c->file);
        cg_config_unref(c);
        return rc;
    }
    if (strcmp(cmd, "ra") == 0)
        return gw_ra(argc - 2, argv + 2, cfg);
    if (strcmp(cmd, "cert") == 0)
        return gw_cert(argc - 2, argv + 2, cfg);
    gw_err("unknown command %s (see cmpgate --help)", cmd);
    return EXIT_USAGE;
}
