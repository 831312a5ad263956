/*
 * gateway_local.h - the command implementations of the cmpgate binary. Private to gateway/.
 * Each returns the process exit status: 0 success, 1 runtime failure, 2 usage or
 * configuration error (after printing one line to stderr).
 */
#ifndef CG_GATEWAY_GATEWAY_LOCAL_H
#define CG_GATEWAY_GATEWAY_LOCAL_H

#include <stddef.h>
#include <stdint.h>

struct cg_config;

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/** @brief Load the configuration and refuse what core cannot do; prints the error line. */
int gw_load_config(const char *path, struct cg_config **out);
int gw_serve(const char *config_path);
int gw_init(const char *dir, int demo, int force, const char *ca_key);
int gw_cert(int argc, char **argv, const char *config_path);
int gw_ra(int argc, char **argv, const char *config_path);
struct cg_store;
/** @brief Load the configuration and open its store (util.c); what prefixes errors.
 *  @return 0 or the exit status after printing the error. */
int gw_open_store(const char *what, const char *config_path, struct cg_config **cfg,
                  struct cg_store **st);
/** @brief n bytes as lower-case hex into out (2n+1 bytes). */
void gw_hex(const uint8_t *p, size_t n, char *out);
/** @brief Unix time as "YYYY-MM-DDTHH:MM:SSZ". */
void gw_iso_time(int64_t t, char *out, size_t n);
/** @brief Print "cmpgate: " + message to stderr. */
void gw_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
