/*
 * npz.h - NumPy .npz archives (np.savez): named arrays for `mpcc train`.
 *
 * An .npz file is a zip archive with one NAME.npy member per array. Members
 * must be stored (np.savez); deflated ones (np.savez_compressed) are refused
 * with a message saying so. Data descriptors and the zip64 extra field NumPy
 * writes into local headers are understood; archives or members over 4 GiB
 * (real zip64) are not. Every offset and size is checked and every member's
 * CRC-32 verified, so a damaged file gives one line naming the member and
 * the problem. Errors: MPCC_ERR_INVALID (malformed), MPCC_ERR_UNSUPPORTED
 * (compression, encryption, zip64, multi-disk, a dtype .npy reading refuses),
 * MPCC_ERR_IO, MPCC_ERR_NOMEM.
 */
#ifndef MPCC_NPZ_H
#define MPCC_NPZ_H

#include "ir/ir.h"

/* The arrays of one archive, in archive order. Each t[i].name (the member
 * name without ".npy") and t[i].data are malloc'd; mpcc_npz_fini frees them. */
typedef struct mpcc_npz {
	int n;
	mpcc_tensor *t;
} mpcc_npz;

mpcc_status mpcc_npz_read_buffer(const void *buf, size_t size, mpcc_npz *out, mpcc_diag *d);
/* Errors are prefixed with the path. */
mpcc_status mpcc_npz_read_file(const char *path, mpcc_npz *out, mpcc_diag *d);
/* The array named name, or NULL. */
const mpcc_tensor *mpcc_npz_find(const mpcc_npz *z, const char *name);
void mpcc_npz_fini(mpcc_npz *z);

#endif
