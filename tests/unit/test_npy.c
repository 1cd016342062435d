/*
 * test_npy.c - .npy reading and writing: round trips for every dtype and
 * rank, the header forms NumPy writes (versions 1.0 to 3.0), and refusal of
 * malformed or unsupported files with a message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/npy.h"

static void
every_dtype_round_trips(void **state)
{
	static const mpcc_dtype types[] = {
		MPCC_DTYPE_F32, MPCC_DTYPE_F16, MPCC_DTYPE_F64, MPCC_DTYPE_I8,  MPCC_DTYPE_I16,
		MPCC_DTYPE_I32, MPCC_DTYPE_I64, MPCC_DTYPE_U8,  MPCC_DTYPE_U16, MPCC_DTYPE_U32,
		MPCC_DTYPE_U64, MPCC_DTYPE_BOOL};
	uint8_t data[2 * 3 * 8];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 37 + 1);
	for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
		for (int rank = 0; rank <= 3; rank++) {
			mpcc_tensor t = {.dtype = types[k], .rank = rank, .data = data};
			size_t n = 1;
			for (int r = 0; r < rank; r++) {
				t.dims[r] = r == 0 ? 2 : r == 1 ? 3 : 1;
				n *= (size_t)t.dims[r];
			}
			t.nbytes = n * mpcc_dtype_size(types[k]);
			if (types[k] == MPCC_DTYPE_BOOL)
				memset(data, 1, sizeof(data));
			void *buf;
			size_t size;
			mpcc_diag d;
			mpcc_diag_init(&d);
			assert_int_equal(mpcc_npy_write_buffer(&t, &buf, &size, &d), MPCC_OK);
			assert_int_equal(size % 64, t.nbytes % 64);
			mpcc_tensor r;
			assert_int_equal(mpcc_npy_read_buffer(buf, size, &r, &d), MPCC_OK);
			assert_int_equal(r.dtype, types[k]);
			assert_int_equal(r.rank, rank);
			for (int q = 0; q < rank; q++)
				assert_int_equal(r.dims[q], t.dims[q]);
			assert_int_equal(r.nbytes, t.nbytes);
			assert_memory_equal(r.data, data, t.nbytes);
			free(r.data);
			free(buf);
		}
	}
}

static void
bf16_is_refused_for_writing(void **state)
{
	uint16_t v = 0;
	mpcc_tensor t = {.dtype = MPCC_DTYPE_BF16, .rank = 1, .dims = {1}, .data = &v, .nbytes = 2};
	void *buf;
	size_t size;
	mpcc_diag d;

	mpcc_diag_init(&d);
	assert_int_equal(mpcc_npy_write_buffer(&t, &buf, &size, &d), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(d.msg, "bf16"));
}

/* A file with the given version and header text, and ndata data bytes. */
static size_t
make(uint8_t *out, int version, const char *hdr, size_t ndata)
{
	size_t pre = version == 1 ? 10 : 12, h = strlen(hdr);

	memcpy(out, "\x93NUMPY", 6);
	out[6] = (uint8_t)version;
	out[7] = 0;
	out[8] = (uint8_t)h;
	out[9] = (uint8_t)(h >> 8);
	if (version != 1) {
		out[10] = 0;
		out[11] = 0;
	}
	memcpy(out + pre, hdr, h);
	memset(out + pre + h, 0x3f, ndata);
	return pre + h + ndata;
}

static void
header_versions_two_and_three_are_read(void **state)
{
	uint8_t buf[512];
	mpcc_tensor t;
	mpcc_diag d;

	for (int v = 1; v <= 3; v++) {
		size_t n = make(buf, v, "{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (2,),}\n",
		                8);
		mpcc_diag_init(&d);
		assert_int_equal(mpcc_npy_read_buffer(buf, n, &t, &d), MPCC_OK);
		assert_int_equal(t.dtype, MPCC_DTYPE_I32);
		assert_int_equal(t.rank, 1);
		assert_int_equal(t.dims[0], 2);
		free(t.data);
	}
	size_t n = make(buf, 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (1, 1), }", 1);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_npy_read_buffer(buf, n, &t, &d), MPCC_OK);
	assert_int_equal(t.dtype, MPCC_DTYPE_BOOL);
	assert_int_equal(((uint8_t *)t.data)[0], 1);
	free(t.data);
}

static void
malformed_files_are_refused_with_a_message(void **state)
{
	static const struct {
		const char *hdr;
		size_t ndata;
		mpcc_status st;
	} bad[] = {
		{"{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8, MPCC_ERR_UNSUPPORTED},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 7, MPCC_ERR_INVALID},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 9, MPCC_ERR_INVALID},
		{"{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, MPCC_ERR_UNSUPPORTED},
		{"{'descr': '<V2', 'fortran_order': False, 'shape': (2,), }", 4, MPCC_ERR_UNSUPPORTED},
		{"{'descr': '<f4', 'fortran_order': False, }", 4, MPCC_ERR_INVALID},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2, }", 8, MPCC_ERR_INVALID},
		{"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", 8, MPCC_ERR_INVALID},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8, MPCC_ERR_INVALID},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8, MPCC_ERR_INVALID},
		{"['descr', '<f4']", 8, MPCC_ERR_INVALID},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, "
		 "99999999999), }", 8, MPCC_ERR_INVALID},
		{"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8,
		 MPCC_ERR_UNSUPPORTED},
	};
	uint8_t buf[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mpcc_tensor t;
		mpcc_diag d;
		size_t n = make(buf, 1, bad[i].hdr, bad[i].ndata);
		mpcc_diag_init(&d);
		assert_int_equal(mpcc_npy_read_buffer(buf, n, &t, &d), bad[i].st);
		assert_true(d.msg[0] != 0);
		assert_null(t.data);
	}
	/* Bad magic, unknown version, header longer than the file, truncation. */
	size_t n = make(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
	for (size_t cut = 0; cut < n; cut++) {
		mpcc_tensor t;
		mpcc_diag d;
		mpcc_diag_init(&d);
		assert_int_not_equal(mpcc_npy_read_buffer(buf, cut, &t, &d), MPCC_OK);
		assert_true(d.msg[0] != 0);
	}
	mpcc_tensor t;
	mpcc_diag d;
	buf[6] = 9;
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_npy_read_buffer(buf, n, &t, &d), MPCC_ERR_UNSUPPORTED);
	buf[6] = 1;
	buf[0] = 'X';
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_npy_read_buffer(buf, n, &t, &d), MPCC_ERR_INVALID);
}

static void
files_round_trip_through_the_file_system(void **state)
{
	float v[3] = {1.5f, -2.0f, 3.25f};
	mpcc_tensor t = {.dtype = MPCC_DTYPE_F32, .rank = 1, .dims = {3}, .data = v, .nbytes = 12};
	char path[] = "/tmp/mpcc-test-npy-XXXXXX";
	int fd = mkstemp(path);
	mpcc_diag d;
	mpcc_tensor r;

	assert_true(fd >= 0);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_npy_write_file(path, &t, &d), MPCC_OK);
	assert_int_equal(mpcc_npy_read_file(path, &r, &d), MPCC_OK);
	assert_memory_equal(r.data, v, sizeof(v));
	free(r.data);
	remove(path);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_npy_read_file("/nonexistent/x.npy", &r, &d), MPCC_ERR_IO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_dtype_round_trips),
		cmocka_unit_test(bf16_is_refused_for_writing),
		cmocka_unit_test(header_versions_two_and_three_are_read),
		cmocka_unit_test(malformed_files_are_refused_with_a_message),
		cmocka_unit_test(files_round_trip_through_the_file_system),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
