/*
 * Replay driver for fuzz targets in normal builds: runs
 * LLVMFuzzerTestOneInput over every file named on the command line (the
 * seed corpus), so the targets are built and exercised in every CI run.
 * Under --config=fuzz libFuzzer's own main is linked instead.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
  int n = 0;
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      fprintf(stderr, "replay: cannot open %s\n", argv[i]);
      return 1;
    }
    uint8_t *buf = malloc(1 << 20);
    size_t len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    n++;
  }
  /* Always also run the empty input. */
  LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
  printf("replay: %d inputs ok\n", n + 1);
  return 0;
}
