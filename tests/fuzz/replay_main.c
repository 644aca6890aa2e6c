/*
 * Regression runner for the fuzz targets: feeds every file of the target's seed corpus
 * (TG_FUZZ_CORPUS, set by tests/fuzz/fuzz_local.mk) to LLVMFuzzerTestOneInput, so
 * `make check` replays past findings without clang or libFuzzer.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TG_FUZZ_CORPUS
#error "TG_FUZZ_CORPUS must name the corpus directory"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + len, 1, cap - len, fp)) > 0) {
        len += got;
        if (len == cap) {
            uint8_t *nbuf = realloc(buf, cap * 2);
            if (nbuf == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nbuf;
            cap *= 2;
        }
    }
    fclose(fp);
    if (buf == NULL) {
        fprintf(stderr, "out of memory reading %s\n", path);
        return -1;
    }
    /* An exact-size copy, so reads past the input are caught like under libFuzzer. */
    uint8_t *exact = malloc(len > 0 ? len : 1);
    if (exact == NULL) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : TG_FUZZ_CORPUS;
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "cannot open corpus %s\n", dir);
        return 1;
    }
    int n = 0, failed = 0;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (replay_file(path) != 0)
            failed = 1;
        ++n;
    }
    closedir(d);
    printf("replayed %d inputs from %s\n", n, dir);
    return failed || n == 0 ? 1 : 0;
}
