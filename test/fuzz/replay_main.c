/*
 * replay_main.c - the driver of a fuzz target when not built with libFuzzer (-Dfuzzing=false):
 * runs LLVMFuzzerTestOneInput over every file of the corpus and regression directories, so
 * every normal build (ASan+UBSan in scripts/test) replays them.
 *   test_fuzz_<target> [DIR|FILE...]
 * Without arguments it replays the directories compiled in as CG_FUZZ_DIRS (":"-separated).
 * Prints one line per failure to read, and at the end "N passed, 0 failed" (N = inputs
 * replayed); a crash or sanitizer report ends the process before that line, which the
 * counting in scripts/test turns into a failure. Files are replayed in name order.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int g_passed, g_failed;

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    if (f == NULL) {
        printf("FAIL %s: cannot open\n", path);
        g_failed++;
        return;
    }
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *p = realloc(buf, cap);
            if (p == NULL)
                abort();
            buf = p;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    /* an exact-size copy, so that ASan sees any read past the input */
    uint8_t *in = malloc(n ? n : 1);
    if (in == NULL)
        abort();
    memcpy(in, buf, n);
    free(buf);
    fprintf(stderr, "replay %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    g_passed++;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("FAIL %s: missing\n", path);
        g_failed++;
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    struct dirent **ents;
    int n = scandir(path, &ents, NULL, by_name);
    for (int i = 0; i < n; i++) {
        char sub[4096];
        if (ents[i]->d_name[0] != '.') {
            snprintf(sub, sizeof(sub), "%s/%s", path, ents[i]->d_name);
            if (stat(sub, &st) == 0 && S_ISREG(st.st_mode))
                run_file(sub);
        }
        free(ents[i]);
    }
    free(ents);
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            run_path(argv[i]);
    } else {
#ifdef CG_FUZZ_DIRS
        char *dirs = strdup(CG_FUZZ_DIRS);
        for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d != NULL;
             d = strtok_r(NULL, ":", &save))
            run_path(d);
        free(dirs);
#endif
    }
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed != 0;
}
