/*
 * mpcc_train.c - the training verbs of the command-line tool: `mpcc train`
 * runs a training step plan over .npz data (docs/training.md), `mpcc
 * export` writes the trained model back out as ONNX.
 *
 * Both drive the trainer API of include/mpcc.h and print what the library
 * reports; the helpers they share with the other verbs are in tools/cli.h.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir/ir.h"
#include "runtime/npz.h"
#include "runtime/plan.h"
#include "tools/cli.h"

static const char usage_train[] =
	"usage: mpcc train PLAN --data FILE.npz --epochs N --batch B [options]\n"
	"Trains with a training step plan (docs/training.md): each step runs the plan\n"
	"on one minibatch and makes its next-state outputs the state of the next step.\n"
	"  --data FILE.npz         training arrays (np.savez, not savez_compressed),\n"
	"                          one per data input and the label, named after the\n"
	"                          plan's inputs; the first dim counts samples\n"
	"  --epochs N              passes over the data (required)\n"
	"  --batch B               minibatch size, which must be the plan's batch size;\n"
	"                          samples that do not fill a last batch are left out\n"
	"  --shuffle SEED          shuffle the samples every epoch (deterministic: the\n"
	"                          same SEED gives the same order)\n"
	"  --eval FILE.npz         after every epoch, the loss (and accuracy) on these\n"
	"                          arrays, without changing the state\n"
	"  --log FILE.csv          one row per step: step,epoch,loss,loss_scale,skipped\n"
	"  --checkpoint FILE       save the state after every epoch\n"
	"  --resume FILE           start from this checkpoint (state and step count)\n"
	"  --backend B             cpu (LLVM JIT, default), interp (reference) or cuda\n"
	"  --max-skips N           the collapse guard: stop after N skipped steps in a\n"
	"                          row (default 32; 0: never)\n"
	"  --min-loss-scale X      ... or when a skipped step's loss scale was below X\n"
	"                          (default 1; 0: never); the message names the first\n"
	"                          non-finite value and the ONNX nodes computing it\n"
	"  -h, --help              this text\n"
	"Each epoch prints its mean loss, the accuracy (argmax of the logits against\n"
	"integer labels, when the plan has logits), the last loss scale, the skipped\n"
	"steps and samples/s: one line per epoch, or a progress line on a terminal.\n";

static const char usage_export[] =
	"usage: mpcc export PLAN [--checkpoint CKPT] -o MODEL.onnx\n"
	"Writes the trained model as ONNX (docs/training.md, \"Export\"): the model the\n"
	"training step plan was compiled from, every trained initializer set to its\n"
	"value in the checkpoint, or to the plan's initial value without one. The\n"
	"optimizer's and loss scaler's state are left out; the rest of the model is\n"
	"kept as it was (initializers in external data that were not trained still\n"
	"refer to their files, which must then be next to MODEL.onnx).\n"
	"  -o MODEL.onnx           where to write the model (required)\n"
	"  --checkpoint CKPT       the state to export (written by mpcc train\n"
	"                          --checkpoint for this plan)\n"
	"  -h, --help              this text\n";

const char *const mpcc_cli_usage_train = usage_train;
const char *const mpcc_cli_usage_export = usage_export;

static int
usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int rc = mpcc_cli_vusage(usage == usage_export ? "export " : "train ", fmt, ap);
	va_end(ap);
	return rc;
}

static bool
is_help(const char *a)
{
	return mpcc_cli_is_help(a);
}

/* ---------------------------------------------------------------- train */

/* splitmix64: the shuffle's generator, so a seed gives the same order on
 * every machine. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Fisher-Yates with a bounded draw (rejection keeps it unbiased). */
static void
shuffle(size_t *perm, size_t n, uint64_t *rng)
{
	for (size_t i = n; i > 1; i--) {
		uint64_t bound = (uint64_t)i, limit = UINT64_MAX - UINT64_MAX % bound, r;
		do
			r = rng_next(rng);
		while (r >= limit);
		size_t j = (size_t)(r % bound);
		size_t t = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = t;
	}
}

static double
elem_double(const void *data, mpcc_dtype dt, size_t i)
{
	const uint8_t *b = (const uint8_t *)data + i * mpcc_dtype_size(dt);
	union {
		float f;
		double d;
		uint16_t h;
		int8_t i8;
		int16_t i16;
		int32_t i32;
		int64_t i64;
		uint8_t u8;
		uint16_t u16;
		uint32_t u32;
		uint64_t u64;
	} u;

	memcpy(&u, b, mpcc_dtype_size(dt));
	switch (dt) {
	case MPCC_DTYPE_F32: return u.f;
	case MPCC_DTYPE_F64: return u.d;
	case MPCC_DTYPE_F16: return mpcc_f16_to_f32(u.h);
	case MPCC_DTYPE_BF16: return mpcc_bf16_to_f32(u.h);
	case MPCC_DTYPE_I8: return u.i8;
	case MPCC_DTYPE_I16: return u.i16;
	case MPCC_DTYPE_I32: return u.i32;
	case MPCC_DTYPE_I64: return (double)u.i64;
	case MPCC_DTYPE_U8: case MPCC_DTYPE_BOOL: return u.u8;
	case MPCC_DTYPE_U16: return u.u16;
	case MPCC_DTYPE_U32: return u.u32;
	case MPCC_DTYPE_U64: return (double)u.u64;
	default: return 0;
	}
}

/* Samples of the batch whose logits' argmax (first on ties) equals the
 * integer label; -1 when accuracy does not apply (no logits, a float label,
 * fewer than two classes, or the label not one value per sample). */
static long
count_correct(const mpcc_tensor *logits, const mpcc_tensor *label, int64_t batch)
{
	if (!logits->data || !label || !mpcc_dtype_is_int(label->dtype) || logits->rank < 1 ||
	    logits->dims[0] != batch || batch <= 0)
		return -1;
	size_t elem = mpcc_dtype_size(logits->dtype);
	if (!mpcc_dtype_is_float(logits->dtype) || !elem ||
	    label->nbytes / mpcc_dtype_size(label->dtype) != (size_t)batch)
		return -1;
	size_t classes = logits->nbytes / elem / (size_t)batch;
	if (classes < 2)
		return -1;
	long correct = 0;
	for (int64_t s = 0; s < batch; s++) {
		size_t best = 0;
		double bv = elem_double(logits->data, logits->dtype, (size_t)s * classes);
		for (size_t c = 1; c < classes; c++) {
			double v = elem_double(logits->data, logits->dtype, (size_t)s * classes + c);
			if (v > bv) {
				bv = v;
				best = c;
			}
		}
		correct += elem_double(label->data, label->dtype, (size_t)s) == (double)best;
	}
	return correct;
}

/* The arrays of one .npz bound to the trainer's inputs, and the staging
 * buffers one minibatch is gathered into. */
typedef struct train_data {
	const char *path;
	mpcc_npz z;
	int n;                    /* the trainer's inputs */
	const mpcc_tensor **src;  /* per input: its array in z */
	size_t *sample_bytes;     /* per input */
	mpcc_tensor *batch;       /* per input: the staging tensor */
	int label;                /* index of the label among them, or -1 */
	size_t n_samples, n_batches;
} train_data;

static void
data_fini(train_data *td)
{
	for (int i = 0; td->batch && i < td->n; i++)
		free(td->batch[i].data);
	free(td->batch);
	free(td->src);
	free(td->sample_bytes);
	mpcc_npz_fini(&td->z);
}

/*
 * Why every array is checked before the first step: a wrong file should
 * fail at once with the name of the array at fault, not after an epoch.
 * The plan decides dtype and the per-sample shape; the file decides the
 * sample count, which must be the same for every array.
 */
static int
data_load(train_data *td, const char *path, mpcc_trainer *tr, int64_t batch)
{
	mpcc_diag d;

	memset(td, 0, sizeof(*td));
	td->path = path;
	td->label = -1;
	mpcc_diag_init(&d);
	if (mpcc_npz_read_file(path, &td->z, &d) != MPCC_OK)
		return mpcc_cli_fail("%s", d.msg);
	td->n = mpcc_trainer_n_inputs(tr);
	td->src = calloc((size_t)td->n + 1, sizeof(*td->src));
	td->sample_bytes = calloc((size_t)td->n + 1, sizeof(size_t));
	td->batch = calloc((size_t)td->n + 1, sizeof(mpcc_tensor));
	if (!td->src || !td->sample_bytes || !td->batch)
		return mpcc_cli_fail("out of memory");
	for (int i = 0; i < td->n; i++) {
		const mpcc_tensor *want = mpcc_trainer_input(tr, i);
		const mpcc_tensor *a = mpcc_npz_find(&td->z, want->name);
		bool is_label = want == mpcc_trainer_label(tr);
		if (is_label)
			td->label = i;
		if (!a) {
			char list[300] = "";
			size_t used = 0;
			for (int k = 0; k < td->z.n && used < sizeof(list); k++)
				used += (size_t)snprintf(list + used, sizeof(list) - used, "%s'%s'",
				                         k ? ", " : "", td->z.t[k].name);
			return mpcc_cli_fail("%s: no array '%s' (the plan's %s; the file holds %s)", path,
			            want->name, is_label ? "label" : "data input",
			            td->z.n ? list : "no arrays");
		}
		bool same = a->dtype == want->dtype && a->rank == want->rank && a->rank >= 1;
		for (int k = 1; same && k < a->rank; k++)
			same = a->dims[k] == want->dims[k];
		if (!same) {
			char wb[160], gb[160];
			size_t u = (size_t)snprintf(wb, sizeof(wb), "%s [N", mpcc_dtype_name(want->dtype));
			for (int k = 1; k < want->rank && u < sizeof(wb); k++)
				u += (size_t)snprintf(wb + u, sizeof(wb) - u, ",%lld", (long long)want->dims[k]);
			if (u < sizeof(wb))
				snprintf(wb + u, sizeof(wb) - u, "]");
			u = (size_t)snprintf(gb, sizeof(gb), "%s [", mpcc_dtype_name(a->dtype));
			for (int k = 0; k < a->rank && u < sizeof(gb); k++)
				u += (size_t)snprintf(gb + u, sizeof(gb) - u, "%s%lld", k ? "," : "",
				                      (long long)a->dims[k]);
			if (u < sizeof(gb))
				snprintf(gb + u, sizeof(gb) - u, "]");
			return mpcc_cli_fail("%s: array '%s' is %s, the plan wants %s (N samples)", path,
			            want->name, gb, want->rank >= 1 ? wb : "a scalar, which has no batch");
		}
		if (i > 0 && (size_t)a->dims[0] != td->n_samples)
			return mpcc_cli_fail("%s: array '%s' has %lld samples, '%s' %zu", path, want->name,
			            (long long)a->dims[0], td->batch[0].name, td->n_samples);
		td->n_samples = (size_t)a->dims[0];
		td->src[i] = a;
		td->sample_bytes[i] = want->nbytes / (size_t)batch;
		td->batch[i] = *want;
		td->batch[i].data = malloc(want->nbytes ? want->nbytes : 1);
		if (!td->batch[i].data)
			return mpcc_cli_fail("out of memory");
	}
	td->n_batches = td->n_samples / (size_t)batch;
	if (td->n_batches == 0)
		return mpcc_cli_fail("%s: %zu samples, fewer than one batch of %lld", path, td->n_samples,
		            (long long)batch);
	return 0;
}

/* Said once per file, when training starts (so an error stays one line). */
static void
note_dropped(const train_data *td, int64_t batch)
{
	if (td->n_samples % (size_t)batch)
		fprintf(stderr, "mpcc: note: %s: the last %zu of %zu samples do not fill a batch of "
		        "%lld and are left out\n", td->path, td->n_samples % (size_t)batch,
		        td->n_samples, (long long)batch);
}

/* Copies the samples perm[first .. first+batch) into the staging tensors. */
static void
gather(train_data *td, const size_t *perm, size_t first, int64_t batch)
{
	for (int i = 0; i < td->n; i++) {
		size_t sb = td->sample_bytes[i];
		uint8_t *dst = td->batch[i].data;
		const uint8_t *src = td->src[i]->data;
		for (int64_t s = 0; s < batch; s++)
			memcpy(dst + (size_t)s * sb, src + perm[first + (size_t)s] * sb, sb);
	}
}

/* Loss and accuracy of the eval set under the current state. */
static int
evaluate(mpcc_trainer *tr, mpcc_context *cx, train_data *ev, int64_t batch, int epoch,
         int epochs, size_t *perm)
{
	double loss = 0;
	long correct = 0;
	bool acc = true;

	for (size_t i = 0; i < ev->n_samples; i++)
		perm[i] = i;
	for (size_t b = 0; b < ev->n_batches; b++) {
		mpcc_train_result r;
		gather(ev, perm, b * (size_t)batch, batch);
		if (mpcc_trainer_eval(tr, ev->batch, ev->n, &r) != MPCC_OK)
			return mpcc_cli_fail("eval: %s", mpcc_context_last_error(cx));
		loss += r.loss;
		long c = count_correct(&r.logits, ev->label >= 0 ? &ev->batch[ev->label] : NULL, batch);
		acc = acc && c >= 0;
		correct += c;
	}
	printf("eval %d/%d: loss %.6g", epoch, epochs, loss / (double)ev->n_batches);
	if (acc)
		printf(", accuracy %.4f", (double)correct / (double)(ev->n_batches * (size_t)batch));
	printf("\n");
	fflush(stdout);
	return 0;
}

/* The parsed command line of `mpcc train`. */
typedef struct train_args {
	const char *plan, *data, *eval, *log, *checkpoint, *resume, *backend;
	long epochs;
	int64_t batch;
	bool shuffle;
	uint64_t seed;
	uint64_t max_skips;    /* the collapse guard's limits */
	double min_loss_scale;
} train_args;

static int
parse_train_args(int argc, char **argv, train_args *a)
{
	memset(a, 0, sizeof(*a));
	a->max_skips = 32;
	a->min_loss_scale = 1;
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		bool more = i + 1 < argc;
		char *end;
		if (is_help(s)) {
			fputs(usage_train, stdout);
			return -1;
		} else if (strcmp(s, "--data") == 0 && more) {
			a->data = argv[++i];
		} else if (strcmp(s, "--eval") == 0 && more) {
			a->eval = argv[++i];
		} else if (strcmp(s, "--log") == 0 && more) {
			a->log = argv[++i];
		} else if (strcmp(s, "--checkpoint") == 0 && more) {
			a->checkpoint = argv[++i];
		} else if (strcmp(s, "--resume") == 0 && more) {
			a->resume = argv[++i];
		} else if (strcmp(s, "--backend") == 0 && more) {
			a->backend = argv[++i];
			if (strcmp(a->backend, "cpu") && strcmp(a->backend, "interp") &&
			    strcmp(a->backend, "cuda"))
				return usage_error(usage_train,
				                   "unknown backend '%s' (choices: cpu, interp, cuda)",
				                   a->backend);
		} else if (strcmp(s, "--epochs") == 0 && more) {
			errno = 0;
			a->epochs = strtol(argv[++i], &end, 10);
			if (end == argv[i] || *end || errno || a->epochs < 1 || a->epochs > 1000000)
				return usage_error(usage_train, "--epochs wants a count >= 1, got '%s'",
				                   argv[i]);
		} else if (strcmp(s, "--batch") == 0 && more) {
			errno = 0;
			a->batch = strtoll(argv[++i], &end, 10);
			if (end == argv[i] || *end || errno || a->batch < 1)
				return usage_error(usage_train, "--batch wants a size >= 1, got '%s'",
				                   argv[i]);
		} else if (strcmp(s, "--shuffle") == 0 && more) {
			errno = 0;
			a->seed = strtoull(argv[++i], &end, 10);
			if (end == argv[i] || *end || errno || argv[i][0] == '-')
				return usage_error(usage_train, "--shuffle wants a seed >= 0, got '%s'",
				                   argv[i]);
			a->shuffle = true;
		} else if (strcmp(s, "--max-skips") == 0 && more) {
			errno = 0;
			a->max_skips = strtoull(argv[++i], &end, 10);
			if (end == argv[i] || *end || errno || argv[i][0] == '-')
				return usage_error(usage_train, "--max-skips wants a count >= 0, got '%s'",
				                   argv[i]);
		} else if (strcmp(s, "--min-loss-scale") == 0 && more) {
			errno = 0;
			a->min_loss_scale = strtod(argv[++i], &end);
			if (end == argv[i] || *end || errno || !(a->min_loss_scale >= 0) ||
			    isinf(a->min_loss_scale))
				return usage_error(usage_train,
				                   "--min-loss-scale wants a number >= 0, got '%s'", argv[i]);
		} else if (s[0] == '-') {
			return usage_error(usage_train, "unknown or incomplete option '%s'", s);
		} else if (!a->plan) {
			a->plan = s;
		} else {
			return usage_error(usage_train, "more than one plan given ('%s')", s);
		}
	}
	if (!a->plan)
		return usage_error(usage_train, "no plan given");
	if (!a->data || !a->epochs || !a->batch)
		return usage_error(usage_train, "%s is required", !a->data ? "--data FILE.npz" :
		                   !a->epochs ? "--epochs N" : "--batch B");
	return 0;
}

/* The plan's batch size: the first dim every caller input shares. */
static int
plan_batch(mpcc_trainer *tr, int64_t want, const char *plan)
{
	int64_t b = -1;

	for (int i = 0; i < mpcc_trainer_n_inputs(tr); i++) {
		const mpcc_tensor *t = mpcc_trainer_input(tr, i);
		if (t->rank < 1)
			return mpcc_cli_fail("%s: input '%s' is a scalar, so the plan has no batch dimension", plan,
			            t->name);
		if (b >= 0 && t->dims[0] != b)
			return mpcc_cli_fail("%s: inputs disagree on the batch size (%lld and %lld)", plan,
			            (long long)b, (long long)t->dims[0]);
		b = t->dims[0];
	}
	if (b < 0)
		return mpcc_cli_fail("%s: the plan takes no data inputs", plan);
	if (b != want)
		return usage_error(usage_train, "--batch %lld: the plan was compiled for batch %lld",
		                   (long long)want, (long long)b);
	return 0;
}

/* One epoch's totals, printed when it ends. */
typedef struct epoch_stats {
	double loss_sum, scale;
	long correct;
	bool acc;
	uint64_t skipped;
	size_t steps;
} epoch_stats;

static void
print_epoch(bool tty, int epoch, long epochs, const epoch_stats *e, size_t n_batches,
            int64_t batch, double secs, bool done)
{
	if (tty)
		printf("\r\033[K");
	printf("epoch %d/%ld: ", epoch, epochs);
	if (!done)
		printf("step %zu/%zu, ", e->steps, n_batches);
	printf("loss %.6g", e->steps ? e->loss_sum / (double)e->steps : 0.0);
	if (e->acc && e->steps)
		printf(", accuracy %.4f", (double)e->correct / (double)(e->steps * (size_t)batch));
	printf(", loss scale %g, skipped %llu, %.0f samples/s", e->scale,
	       (unsigned long long)e->skipped,
	       secs > 0 ? (double)(e->steps * (size_t)batch) / secs : 0.0);
	if (done || !tty)
		printf("\n");
	fflush(stdout);
}

/* The epochs, once everything is loaded and checked. */
static int
train_loop(mpcc_trainer *tr, mpcc_context *cx, const train_args *a, train_data *td,
           train_data *ev, FILE *log, size_t *perm, size_t *eval_perm)
{
	bool tty = isatty(fileno(stdout));
	uint64_t rng = a->seed;

	for (size_t i = 0; i < td->n_samples; i++)
		perm[i] = i;
	for (int epoch = 1; epoch <= a->epochs; epoch++) {
		epoch_stats e = {.acc = true, .scale = 1};
		double t0 = mpcc_cli_now_ms(), shown = t0;
		if (a->shuffle)
			shuffle(perm, td->n_samples, &rng);
		for (size_t b = 0; b < td->n_batches; b++) {
			mpcc_train_result r;
			gather(td, perm, b * (size_t)a->batch, a->batch);
			if (mpcc_trainer_step(tr, td->batch, td->n, &r) != MPCC_OK) {
				if (tty)
					printf("\n");
				return mpcc_cli_fail("step %zu of epoch %d: %s", b + 1, epoch,
				            mpcc_context_last_error(cx));
			}
			long c = count_correct(&r.logits, td->label >= 0 ? &td->batch[td->label] : NULL,
			                       a->batch);
			e.acc = e.acc && c >= 0;
			e.correct += c;
			e.loss_sum += r.loss;
			e.scale = r.loss_scale;
			e.skipped += r.skipped;
			e.steps++;
			if (log)
				fprintf(log, "%llu,%d,%.9g,%.9g,%d\n", (unsigned long long)r.step, epoch,
				        r.loss, r.loss_scale, r.skipped ? 1 : 0);
			if (tty && mpcc_cli_now_ms() - shown > 100) {
				shown = mpcc_cli_now_ms();
				print_epoch(true, epoch, a->epochs, &e, td->n_batches, a->batch,
				            (shown - t0) / 1e3, false);
			}
		}
		print_epoch(tty, epoch, a->epochs, &e, td->n_batches, a->batch,
		            (mpcc_cli_now_ms() - t0) / 1e3, true);
		if (ev && evaluate(tr, cx, ev, a->batch, epoch, (int)a->epochs, eval_perm))
			return 1;
		if (a->checkpoint && mpcc_trainer_save(tr, a->checkpoint) != MPCC_OK)
			return mpcc_cli_fail("%s", mpcc_context_last_error(cx));
	}
	return 0;
}

/*
 * Why the data are read before the trainer is created: a wrong file name
 * should fail at once, before the JIT spends seconds; they are checked
 * against the plan's inputs right after, before the first step.
 */
int
mpcc_cli_train(int argc, char **argv)
{
	train_args a;
	int rc = parse_train_args(argc, argv, &a);

	if (rc)
		return rc < 0 ? 0 : rc;
	mpcc_context *cx = NULL;
	mpcc_plan *plan = NULL;
	mpcc_trainer *tr = NULL;
	train_data td = {0}, ev = {0};
	size_t *perm = NULL, *eval_perm = NULL;
	FILE *log = NULL;

	if (mpcc_context_create(&cx) != MPCC_OK)
		return mpcc_cli_fail("out of memory");
	if (mpcc_plan_load(cx, a.plan, &plan) != MPCC_OK) {
		rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
		goto done;
	}
	if (!plan->train) {
		rc = mpcc_cli_fail("%s is not a training step plan (it has no section 'TRAN')", a.plan);
		goto done;
	}
	if (mpcc_trainer_create(cx, plan, a.backend, &tr) != MPCC_OK) {
		rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
		goto done;
	}
	mpcc_trainer_set_guard(tr, a.min_loss_scale, a.max_skips);
	if ((rc = plan_batch(tr, a.batch, a.plan)) || (rc = data_load(&td, a.data, tr, a.batch)))
		goto done;
	if (a.eval && (rc = data_load(&ev, a.eval, tr, a.batch)))
		goto done;
	if (a.resume && mpcc_trainer_load(tr, a.resume) != MPCC_OK) {
		rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
		goto done;
	}
	perm = malloc(sizeof(size_t) * (td.n_samples + 1));
	eval_perm = malloc(sizeof(size_t) * (ev.n_samples + 1));
	if (!perm || !eval_perm) {
		rc = mpcc_cli_fail("out of memory");
		goto done;
	}
	if (a.log) {
		log = fopen(a.log, "w");
		if (!log) {
			rc = mpcc_cli_fail("cannot write '%s': %s", a.log, strerror(errno));
			goto done;
		}
		fprintf(log, "step,epoch,loss,loss_scale,skipped\n");
	}
	note_dropped(&td, a.batch);
	if (a.eval && (!a.data || strcmp(a.eval, a.data) != 0))
		note_dropped(&ev, a.batch);
	printf("training: %s\n", mpcc_trainer_recipe(tr)[0] ? mpcc_trainer_recipe(tr)
	                                                     : "(no description)");
	rc = train_loop(tr, cx, &a, &td, a.eval ? &ev : NULL, log, perm, eval_perm);
done:
	if (log && fclose(log) != 0 && rc == 0)
		rc = mpcc_cli_fail("cannot write '%s'", a.log);
	free(perm);
	free(eval_perm);
	data_fini(&td);
	data_fini(&ev);
	mpcc_trainer_destroy(tr);
	mpcc_plan_destroy(plan);
	mpcc_context_destroy(cx);
	return rc;
}

/* ---------------------------------------------------------------- export */

/*
 * Why a trainer and not the plan alone: the checkpoint is matched against
 * the plan's state by the trainer (names, dtypes, shapes, checksum), and
 * export reads the state the trainer holds. The interp backend compiles
 * nothing, so creating one costs no JIT time.
 */
int
mpcc_cli_export(int argc, char **argv)
{
	const char *plan_path = NULL, *ckpt = NULL, *out = NULL;

	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		bool more = i + 1 < argc;
		if (is_help(s)) {
			fputs(usage_export, stdout);
			return 0;
		} else if (strcmp(s, "-o") == 0 && more) {
			out = argv[++i];
		} else if (strcmp(s, "--checkpoint") == 0 && more) {
			ckpt = argv[++i];
		} else if (s[0] == '-') {
			return usage_error(usage_export, "unknown or incomplete option '%s'", s);
		} else if (!plan_path) {
			plan_path = s;
		} else {
			return usage_error(usage_export, "more than one plan given ('%s')", s);
		}
	}
	if (!plan_path)
		return usage_error(usage_export, "no plan given");
	if (!out)
		return usage_error(usage_export, "-o MODEL.onnx is required");

	mpcc_context *cx = NULL;
	mpcc_plan *plan = NULL;
	mpcc_trainer *tr = NULL;
	int rc = 0;
	if (mpcc_context_create(&cx) != MPCC_OK)
		return mpcc_cli_fail("out of memory");
	if (mpcc_plan_load(cx, plan_path, &plan) != MPCC_OK)
		rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
	else if (!plan->train)
		rc = mpcc_cli_fail("%s is not a training step plan (it has no section 'TRAN')", plan_path);
	else if (!plan->source)
		rc = mpcc_cli_fail("%s: plan has no source model: recompile it with this mpcc", plan_path);
	else if (mpcc_trainer_create(cx, plan, "interp", &tr) != MPCC_OK ||
	         (ckpt && mpcc_trainer_load(tr, ckpt) != MPCC_OK) ||
	         mpcc_trainer_export(tr, out) != MPCC_OK)
		rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
	mpcc_trainer_destroy(tr);
	mpcc_plan_destroy(plan);
	mpcc_context_destroy(cx);
	return rc;
}
