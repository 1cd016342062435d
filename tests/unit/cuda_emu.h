/*
 * cuda_emu.h - runs the CUDA emitter's kernels on the CPU, thread by thread,
 * for the unit tests (test_cuda_matrix, test_cuda_reduce); no GPU needed.
 *
 * The printed CUDA C is compiled as host C++ with g++ behind an emulating
 * shim (cuda_emu.c says what it emulates and how): every GPU thread of a
 * block is a pthread, blocks run one at a time. Buffers come from
 * mpcc_emu_alloc, which ends them at a guard page so a plain access past
 * the end crashes the test.
 */
#ifndef MPCC_TESTS_CUDA_EMU_H
#define MPCC_TESTS_CUDA_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mpcc.h"

#define MPCC_EMU_MAX_ARGS 16

/* The shim, C++ source to put before the emitted kernels. */
extern const char mpcc_emu_shim[];

/* mpcc_emu_launch in the compiled library: runs fn on grid x block threads
 * (block a multiple of 32, at most 1024) with args (MPCC_EMU_MAX_ARGS
 * pointers); bufs/lens name the memory 16-byte and async copies may touch.
 * Returns NULL or what went wrong (a misaligned vector access, ...). */
typedef const char *(*mpcc_emu_launch_fn)(void *fn, unsigned grid, unsigned block, void **args,
                                          void **bufs, const size_t *lens, int n_bufs);

/* Also in the library: long mpcc_emu_vector_accesses(void) and long
 * mpcc_emu_shuffles(void), the 16-byte accesses and the shuffle lane-calls
 * since the last call (look them up with dlsym). */
typedef long (*mpcc_emu_count_fn)(void);

/* A buffer that ends within 16 bytes of a guard page. */
typedef struct mpcc_emu_buf {
	void *map;
	size_t len;
	void *p;
} mpcc_emu_buf;

/* bytes at p, where p - misalign is 16-byte aligned. */
void *mpcc_emu_alloc(mpcc_emu_buf *g, size_t bytes, size_t misalign);
void mpcc_emu_free(mpcc_emu_buf *g);

/* Opens a translation unit in a fresh temporary directory: returns the
 * stream, with the shim written, and the directory in dir (size >= 64). */
void *mpcc_emu_begin(char *dir);
/* Compiles the unit begun in dir with g++ and dlopens it; NULL on failure
 * (the source stays in dir). */
void *mpcc_emu_finish(void *stream, const char *dir);
/* Closes the library and removes dir unless keep or the environment
 * variable MPCC_EMU_KEEP is set. */
void mpcc_emu_close(void *so, const char *dir, bool keep);

/* Test data: f32 to f16 / bf16 bits (round to nearest even; a NaN stays a
 * quiet NaN), and element i of a buffer of float dtype t as a double (NaN
 * for any other dtype). */
uint16_t mpcc_emu_f2h(float x);
uint16_t mpcc_emu_f2bf(float x);
double mpcc_emu_as_double(mpcc_dtype t, const void *p, int64_t i);

#endif
