/*
 * cg_log.h - logging to stderr, one line per call.
 *
 * DESIGN: the level and format are process globals set once at start-up, before threads
 * start (gateway/main.c); cg_log itself is thread-safe (one fputs per line). Leaf header.
 */
#ifndef CG_CORE_CG_LOG_H
#define CG_CORE_CG_LOG_H

enum cg_log_level { CG_LOG_ERROR = 0, CG_LOG_WARN = 1, CG_LOG_INFO = 2, CG_LOG_DEBUG = 3 };

/** @brief Set the lowest level printed and whether lines are JSON objects. Not thread-safe. */
void cg_log_setup(int level, int json);
/** @brief Level names "error", "warn", "info", "debug" → level, or -1. */
int cg_log_level_from_name(const char *name);
int cg_log_enabled(int level);
/** @brief printf-style; the text is one event, prefixed with time and level. */
void cg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** @brief Same as cg_log but for key=value records: the message is already formatted
 *         as alternating keys and values; JSON mode renders them as an object. */
void cg_log_kv(int level, const char *const *kv, int nkv);

#endif
