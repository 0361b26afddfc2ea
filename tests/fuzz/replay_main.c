/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file replay_main.c
 * @brief Runs a fuzz harness without libFuzzer: every file (or every file
 *        in every directory) named on the command line is passed once to
 *        LLVMFuzzerTestOneInput, so `make check` can replay the corpus and
 *        saved crash inputs with any compiler.  Without arguments it
 *        replays the directories given at build time as
 *        -DFZ_CORPUS_DIR="..." and -DFZ_REGRESS_DIR="..." (so the program
 *        can sit in TESTS as it is), and fails when there are none.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
replay_file (const char *path)
{
  FILE *f = fopen (path, "rb");
  unsigned char *buf;
  long len;

  if (NULL == f)
  {
    perror (path);
    return 1;
  }
  if ((0 != fseek (f, 0, SEEK_END)) || ((len = ftell (f)) < 0)
      || (0 != fseek (f, 0, SEEK_SET)))
  {
    fclose (f);
    return 1;
  }
  /* One spare byte so an empty file still gets a valid pointer. */
  buf = malloc ((size_t) len + 1);
  if ((NULL == buf) || ((size_t) len != fread (buf, 1, (size_t) len, f)))
  {
    free (buf);
    fclose (f);
    return 1;
  }
  fclose (f);
  LLVMFuzzerTestOneInput (buf, (size_t) len);
  free (buf);
  return 0;
}

static int
replay_path (const char *path, unsigned int *count)
{
  struct stat st;
  DIR *d;
  struct dirent *de;
  int fails = 0;

  if (0 != stat (path, &st))
  {
    perror (path);
    return 1;
  }
  if (! S_ISDIR (st.st_mode))
  {
    (*count)++;
    return replay_file (path);
  }
  d = opendir (path);
  if (NULL == d)
    return 1;
  while (NULL != (de = readdir (d)))
  {
    char sub[4096];
    if ('.' == de->d_name[0])
      continue; /* also skips .keep */
    snprintf (sub, sizeof (sub), "%s/%s", path, de->d_name);
    if ((0 == stat (sub, &st)) && S_ISREG (st.st_mode))
    {
      (*count)++;
      fails += replay_file (sub);
    }
  }
  closedir (d);
  return fails;
}

int
main (int argc, char **argv)
{
  unsigned int count = 0;
  int fails = 0;
  int i;

  for (i = 1; i < argc; i++)
    fails += replay_path (argv[i], &count);
  if (1 == argc)
  {
#ifdef FZ_CORPUS_DIR
    fails += replay_path (FZ_CORPUS_DIR, &count);
#endif
#ifdef FZ_REGRESS_DIR
    fails += replay_path (FZ_REGRESS_DIR, &count);
#endif
    if (0 == count)
    {
      fprintf (stderr, "usage: %s FILE-OR-DIR...\n", argv[0]);
      return EXIT_FAILURE;
    }
  }
  printf ("%s: replayed %u inputs\n", argv[0], count);
  return fails ? EXIT_FAILURE : EXIT_SUCCESS;
}
