/*
 * onnx_tensor.c - ONNX TensorProto to dense little-endian data.
 *
 * A TensorProto carries its elements in one of several places: raw_data
 * (already little-endian bytes), a typed repeated field (float_data,
 * int32_data, int64_data, double_data, uint64_data; narrow integers, bool and
 * the 16-bit float bit patterns travel in int32_data), or an external file
 * next to the model. The decoder checks the shape first (no negative dims, no
 * element count overflowing int64, rank within MPCC_MAX_RANK), then checks that
 * the place holding the data holds exactly the bytes the shape needs, and only
 * then allocates: a damaged model can never make us allocate more than it
 * carries. External data is confined to the model's folder: the location must
 * be relative, free of "..", and still inside the folder after realpath().
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "frontend/onnx_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mpcc's ONNX reader assumes a little-endian host"
#endif

/* Writes "[2,3]" into buf. */
static const char *
dims_text(char *buf, size_t size, int rank, const int64_t *dims)
{
	size_t n = 0;
	n += (size_t)snprintf(buf + n, size - n, "[");
	for (int i = 0; i < rank && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%" PRId64, i ? "," : "", dims[i]);
	if (n < size)
		snprintf(buf + n, size - n, "]");
	return buf;
}

/* Which typed repeated field a dtype travels in, when not in raw_data. */
enum field { F_FLOAT, F_INT32, F_INT64, F_DOUBLE, F_UINT64 };

static enum field
typed_field(mpcc_dtype t)
{
	switch (t) {
	case MPCC_DTYPE_F32:
		return F_FLOAT;
	case MPCC_DTYPE_I64:
		return F_INT64;
	case MPCC_DTYPE_F64:
		return F_DOUBLE;
	case MPCC_DTYPE_U32:
	case MPCC_DTYPE_U64:
		return F_UINT64;
	default:
		return F_INT32;
	}
}

static const char *field_names[] = {"float_data", "int32_data", "int64_data", "double_data",
                                    "uint64_data"};

static size_t
field_count(const Onnx__TensorProto *tp, enum field f)
{
	switch (f) {
	case F_FLOAT:
		return tp->n_float_data;
	case F_INT32:
		return tp->n_int32_data;
	case F_INT64:
		return tp->n_int64_data;
	case F_DOUBLE:
		return tp->n_double_data;
	case F_UINT64:
		return tp->n_uint64_data;
	}
	return 0;
}

/*
 * Copies a typed field into dst, narrowing each element to the dtype's width.
 * The ONNX spec stores int8..uint16, bool and the f16/bf16 bit patterns one
 * per int32, so narrowing is a plain truncation; bool is normalised to 0/1.
 */
static void
copy_typed(const Onnx__TensorProto *tp, mpcc_dtype t, size_t n, void *dst)
{
	switch (typed_field(t)) {
	case F_FLOAT:
		memcpy(dst, tp->float_data, n * sizeof(float));
		return;
	case F_INT64:
		memcpy(dst, tp->int64_data, n * sizeof(int64_t));
		return;
	case F_DOUBLE:
		memcpy(dst, tp->double_data, n * sizeof(double));
		return;
	case F_UINT64:
		if (t == MPCC_DTYPE_U64) {
			memcpy(dst, tp->uint64_data, n * sizeof(uint64_t));
		} else {
			for (size_t i = 0; i < n; i++)
				((uint32_t *)dst)[i] = (uint32_t)tp->uint64_data[i];
		}
		return;
	case F_INT32:
		break;
	}
	for (size_t i = 0; i < n; i++) {
		int32_t v = tp->int32_data[i];
		switch (t) {
		case MPCC_DTYPE_I8:
		case MPCC_DTYPE_U8:
			((uint8_t *)dst)[i] = (uint8_t)v;
			break;
		case MPCC_DTYPE_BOOL:
			((uint8_t *)dst)[i] = v != 0;
			break;
		case MPCC_DTYPE_I16:
		case MPCC_DTYPE_U16:
		case MPCC_DTYPE_F16:
		case MPCC_DTYPE_BF16:
			((uint16_t *)dst)[i] = (uint16_t)v;
			break;
		default:
			((int32_t *)dst)[i] = v;
			break;
		}
	}
}

/* Parses a non-negative decimal integer that fills the whole string. */
static bool
parse_size(const char *s, int64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < 0)
		return false;
	*out = v;
	return true;
}

/* True when location is relative and has no ".." component. */
static bool
location_is_local(const char *loc)
{
	if (!loc[0] || loc[0] == '/')
		return false;
	const char *p = loc;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return false;
		p += n;
		if (*p == '/')
			p++;
	}
	return true;
}

/*
 * Reads the external data of tp into dst (nbytes). The path check happens
 * twice: lexically (relative, no "..") so the message says what is wrong
 * with the model, and after realpath() so a symbolic link cannot lead out of
 * the folder either.
 */
static mpcc_status
read_external(const Onnx__TensorProto *tp, const char *what, const char *base_dir, size_t nbytes,
              void *dst, mpcc_diag *d)
{
	const char *loc = NULL;
	int64_t offset = 0, length = -1;
	for (size_t i = 0; i < tp->n_external_data; i++) {
		const Onnx__StringStringEntryProto *e = tp->external_data[i];
		const char *key = e->key ? e->key : "";
		const char *val = e->value ? e->value : "";
		if (!strcmp(key, "location")) {
			loc = val;
		} else if (!strcmp(key, "offset")) {
			if (!parse_size(val, &offset))
				return mpcc_diag_error(
				    d, MPCC_ERR_INVALID,
				    "%s: external data offset '%s' is not a byte count", what, val);
		} else if (!strcmp(key, "length")) {
			if (!parse_size(val, &length))
				return mpcc_diag_error(
				    d, MPCC_ERR_INVALID,
				    "%s: external data length '%s' is not a byte count", what, val);
		}
	}
	if (!loc)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "%s: external data has no location",
		                       what);
	if (!base_dir)
		return mpcc_diag_error(
		    d, MPCC_ERR_INVALID,
		    "%s: external data '%s' needs the model's folder (model read "
		    "from memory without one)",
		    what, loc);
	if (!location_is_local(loc))
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "%s: external data location '%s' leaves the model's folder",
		                       what, loc);
	if (length >= 0 && (uint64_t)length != nbytes)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "%s: external data length %" PRId64
		                       " differs from the %zu bytes "
		                       "its shape needs",
		                       what, length, nbytes);

	char base_real[PATH_MAX], path[PATH_MAX], real[PATH_MAX];
	if (!realpath(base_dir, base_real))
		return mpcc_diag_error(d, MPCC_ERR_IO, "%s: model folder '%s': %s", what, base_dir,
		                       strerror(errno));
	if ((size_t)snprintf(path, sizeof path, "%s/%s", base_dir, loc) >= sizeof path)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "%s: external data path too long",
		                       what);
	if (!realpath(path, real))
		return mpcc_diag_error(d, MPCC_ERR_IO, "%s: external data '%s': %s", what, path,
		                       strerror(errno));
	size_t bl = strlen(base_real);
	bool inside = strncmp(real, base_real, bl) == 0 &&
	              (real[bl] == '/' || (bl == 1 && base_real[0] == '/'));
	if (!inside)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "%s: external data location '%s' leaves the model's folder",
		                       what, loc);

	FILE *f = fopen(real, "rb");
	if (!f)
		return mpcc_diag_error(d, MPCC_ERR_IO, "%s: external data '%s': %s", what, path,
		                       strerror(errno));
	struct stat st;
	mpcc_status s = MPCC_OK;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		s = mpcc_diag_error(d, MPCC_ERR_IO, "%s: external data '%s' is not a regular file",
		                    what, path);
	} else if ((uint64_t)offset > (uint64_t)st.st_size ||
	           (uint64_t)st.st_size - (uint64_t)offset < nbytes) {
		s = mpcc_diag_error(d, MPCC_ERR_INVALID,
		                    "%s: external data '%s' holds %lld bytes, offset %" PRId64
		                    " plus %zu bytes needed",
		                    what, path, (long long)st.st_size, offset, nbytes);
	} else if (fseeko(f, (off_t)offset, SEEK_SET) != 0 ||
	           (nbytes && fread(dst, 1, nbytes, f) != nbytes)) {
		s = mpcc_diag_error(d, MPCC_ERR_IO, "%s: external data '%s': read failed", what,
		                    path);
	}
	fclose(f);
	return s;
}

/*
 * The shape is validated before anything else so that every later size
 * computation is known not to overflow: numel fits int64 and numel times the
 * element size fits both int64 and size_t.
 */
mpcc_status
mpcc_onnx_decode_tensor(const Onnx__TensorProto *tp, const char *what, const char *base_dir,
                        mpcc_tensor *out, mpcc_diag *d)
{
	memset(out, 0, sizeof *out);
	int onnx_type = tp->has_data_type ? tp->data_type : 0;
	if (onnx_type == ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "%s: data type is undefined", what);
	if (onnx_type == ONNX__TENSOR_PROTO__DATA_TYPE__STRING)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "%s: string tensors are not supported", what);
	if (onnx_type == ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64 ||
	    onnx_type == ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "%s: complex tensors are not supported", what);
	mpcc_dtype t = mpcc_dtype_from_onnx(onnx_type);
	if (t == MPCC_DTYPE_UNDEF)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "%s: ONNX data type %d is not supported", what, onnx_type);
	if (tp->n_dims > MPCC_MAX_RANK)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "%s: rank %zu exceeds the supported maximum of %d", what,
		                       tp->n_dims, MPCC_MAX_RANK);
	if (tp->segment)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "%s: segmented tensors are not supported", what);

	int rank = (int)tp->n_dims;
	int64_t numel = 1;
	bool overflow = false;
	for (int i = 0; i < rank; i++) {
		if (tp->dims[i] < 0)
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "%s: dimension %d is negative (%" PRId64 ")", what,
			                       i, tp->dims[i]);
		if (__builtin_mul_overflow(numel, tp->dims[i], &numel))
			overflow = true;
	}
	size_t esize = mpcc_dtype_size(t);
	int64_t nbytes64;
	if (overflow || __builtin_mul_overflow(numel, (int64_t)esize, &nbytes64) ||
	    (uint64_t)nbytes64 > SIZE_MAX) {
		char dt[160];
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "%s: shape %s has more elements than fit "
		                       "in 64 bits",
		                       what, dims_text(dt, sizeof dt, rank, tp->dims));
	}
	size_t nbytes = (size_t)nbytes64;

	bool external = tp->has_data_location &&
	                tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
	enum field f = typed_field(t);
	size_t n_typed = tp->n_float_data + tp->n_int32_data + tp->n_int64_data +
	                 tp->n_double_data + tp->n_uint64_data;
	char dt[160];
	dims_text(dt, sizeof dt, rank, tp->dims);

	if (external) {
		if (tp->has_raw_data || n_typed)
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "%s: external data and inline data both present",
			                       what);
	} else if (tp->has_raw_data) {
		if (n_typed)
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "%s: raw_data and a typed data field both present",
			                       what);
		if (tp->raw_data.len != nbytes)
			return mpcc_diag_error(
			    d, MPCC_ERR_INVALID,
			    "%s: raw_data holds %zu bytes, shape %s %s needs %zu", what,
			    tp->raw_data.len, dt, mpcc_dtype_name(t), nbytes);
	} else {
		if (n_typed != field_count(tp, f))
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "%s: %s data must be in %s or raw_data", what,
			                       mpcc_dtype_name(t), field_names[f]);
		if ((uint64_t)n_typed != (uint64_t)numel)
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "%s: %s holds %zu elements, shape %s needs %" PRId64,
			                       what, field_names[f], n_typed, dt, numel);
	}

	void *data = malloc(nbytes ? nbytes : 1);
	if (!data)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "%s: out of memory for %zu bytes", what,
		                       nbytes);
	if (external) {
		mpcc_status s = read_external(tp, what, base_dir, nbytes, data, d);
		if (s != MPCC_OK) {
			free(data);
			return s;
		}
	} else if (tp->has_raw_data) {
		if (nbytes)
			memcpy(data, tp->raw_data.data, nbytes);
	} else {
		copy_typed(tp, t, (size_t)numel, data);
	}
	out->dtype = t;
	out->rank = rank;
	for (int i = 0; i < rank; i++)
		out->dims[i] = tp->dims[i];
	out->data = data;
	out->nbytes = nbytes;
	return MPCC_OK;
}

void
mpcc_onnx_sanitize_msg(mpcc_diag *d)
{
	for (char *p = d->msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

/* The test suite's .pb files: one TensorProto each, no external data. */
mpcc_status
mpcc_onnx_read_tensor(const void *buf, size_t size, mpcc_tensor *out, mpcc_diag *d)
{
	memset(out, 0, sizeof *out);
	Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, size, buf);
	if (!tp)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "not an ONNX tensor (protobuf parse failed)");
	char what[256];
	snprintf(what, sizeof what, "tensor '%s'", tp->name ? tp->name : "");
	mpcc_tensor t;
	mpcc_status s = mpcc_onnx_decode_tensor(tp, what, NULL, &t, d);
	if (s == MPCC_OK && tp->name && tp->name[0]) {
		char *name = strdup(tp->name);
		if (!name) {
			free(t.data);
			s = mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory");
		}
		t.name = name;
	}
	onnx__tensor_proto__free_unpacked(tp, NULL);
	if (s != MPCC_OK) {
		mpcc_onnx_sanitize_msg(d);
		return s;
	}
	*out = t;
	return MPCC_OK;
}
