/*
 * npy.h - NumPy .npy files: the tensors the CLI reads and writes.
 *
 * Versions 1.0, 2.0 and 3.0 are read; 1.0 is written (mpcc's headers are
 * short). Only C order and little-endian (or
 * single-byte) dtypes: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1 (also '?').
 * bf16 has no .npy type and is refused. Errors: MPCC_ERR_INVALID for a
 * malformed file, MPCC_ERR_UNSUPPORTED for a dtype or layout mpcc does not
 * take, MPCC_ERR_IO for the file system.
 */
#ifndef MPCC_NPY_H
#define MPCC_NPY_H

#include "ir/ir.h"

/* On success out->data is malloc'd (the caller frees it), out->name NULL. */
mpcc_status mpcc_npy_read_buffer(const void *buf, size_t size, mpcc_tensor *out, mpcc_diag *d);
mpcc_status mpcc_npy_read_file(const char *path, mpcc_tensor *out, mpcc_diag *d);

/* *out is malloc'd. t->nbytes must match its dtype and shape. */
mpcc_status mpcc_npy_write_buffer(const mpcc_tensor *t, void **out, size_t *out_size,
                                  mpcc_diag *d);
mpcc_status mpcc_npy_write_file(const char *path, const mpcc_tensor *t, mpcc_diag *d);

#endif
