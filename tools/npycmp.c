/*
 * npycmp.c - compares two .npy tensors: shapes must agree; prints the
 * maximum absolute error and the relative L2 error, and exits 1 when the
 * relative L2 error exceeds --max-rel-l2 (default: no limit).
 *
 *   mpcc-npycmp GOT.npy REF.npy [--max-rel-l2 X]
 *
 * Used by the demo and the scripts that check outputs against references.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "runtime/npy.h"

static double
element(const mpcc_tensor *t, size_t i)
{
	const unsigned char *p = (const unsigned char *)t->data + i * mpcc_dtype_size(t->dtype);
	switch (t->dtype) {
	case MPCC_DTYPE_F32: { float v; memcpy(&v, p, 4); return v; }
	case MPCC_DTYPE_F64: { double v; memcpy(&v, p, 8); return v; }
	case MPCC_DTYPE_F16: { uint16_t v; memcpy(&v, p, 2); return mpcc_f16_to_f32(v); }
	case MPCC_DTYPE_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
	case MPCC_DTYPE_I32: { int32_t v; memcpy(&v, p, 4); return v; }
	case MPCC_DTYPE_U8: case MPCC_DTYPE_BOOL: return *p;
	case MPCC_DTYPE_I8: return (int8_t)*p;
	default: return NAN;
	}
}

int
main(int argc, char **argv)
{
	if (argc != 3 && !(argc == 5 && !strcmp(argv[3], "--max-rel-l2"))) {
		fprintf(stderr, "usage: mpcc-npycmp GOT.npy REF.npy [--max-rel-l2 X]\n");
		return 2;
	}
	double limit = argc == 5 ? atof(argv[4]) : INFINITY;
	mpcc_tensor a, b;
	mpcc_diag d;
	mpcc_diag_init(&d);
	if (mpcc_npy_read_file(argv[1], &a, &d) || mpcc_npy_read_file(argv[2], &b, &d)) {
		fprintf(stderr, "mpcc-npycmp: %s\n", d.msg);
		return 1;
	}
	int same = a.rank == b.rank;
	for (int i = 0; same && i < a.rank; i++)
		same = a.dims[i] == b.dims[i];
	if (!same) {
		fprintf(stderr, "mpcc-npycmp: shapes differ\n");
		return 1;
	}
	size_t n = b.nbytes / mpcc_dtype_size(b.dtype);
	double max_abs = 0, num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		double e = element(&a, i) - element(&b, i);
		if (!(fabs(e) <= max_abs))
			max_abs = fabs(e);
		num += e * e;
		den += element(&b, i) * element(&b, i);
	}
	double rel = sqrt(num / (den > 0 ? den : 1));
	printf("elements=%zu max_abs_err=%.3g rel_l2_err=%.3g\n", n, max_abs, rel);
	free(a.data);
	free(b.data);
	return rel <= limit ? 0 : 1;
}
