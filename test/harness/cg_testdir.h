/*
 * cg_testdir.h - removing a test's temporary directory tree (stores, keys, configuration),
 * for the unit tests and the fuzz targets. Header-only.
 */
#ifndef CG_TEST_HARNESS_CG_TESTDIR_H
#define CG_TEST_HARNESS_CG_TESTDIR_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static inline int cg_test_remove_one_(const char *path, const struct stat *st, int flag,
                                      struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* rm -rf dir: files first, then their directories; links are removed, not followed. */
static inline void cg_test_rmtree(const char *dir)
{
    nftw(dir, cg_test_remove_one_, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
