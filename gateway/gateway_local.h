/*
 * gateway_local.h - the command implementations of the cmpgate binary. Private to gateway/.
 * Each returns the process exit status: 0 success, 1 runtime failure, 2 usage or
 * configuration error (after printing one line to stderr).
 */
#ifndef CG_GATEWAY_GATEWAY_LOCAL_H
#define CG_GATEWAY_GATEWAY_LOCAL_H

struct cg_config;

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/** @brief Load the configuration and refuse what core cannot do; prints the error line. */
int gw_load_config(const char *path, struct cg_config **out);
int gw_serve(const char *config_path);
int gw_init(const char *dir, int demo, int force, const char *ca_key);
int gw_cert(int argc, char **argv, const char *config_path);
int gw_ra(int argc, char **argv, const char *config_path);
/** @brief Print "cmpgate: " + message to stderr. */
void gw_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
