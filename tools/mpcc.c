/*
 * mpcc.c - the command-line tool: compile an ONNX model to a plan, run a
 * plan on .npy inputs, inspect a plan, explain a node's precision; the
 * training verbs (train with a training step plan on .npz data, export the
 * trained model as ONNX) are in tools/mpcc_train.c.
 *
 * Each verb parses its own flags and calls the library; the library never
 * prints, so every message a user sees is written here: one line
 * "mpcc: <message>" on stderr and exit status 1 for failures, 2 for usage
 * errors. --dump-ir reaches into the compiler's internal headers, which is
 * fine because the tool links mpcc_core statically.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "codegen/kir.h"
#include "frontend/onnx.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/autoprec.h"
#include "runtime/memplan.h"
#include "runtime/npy.h"
#include "runtime/plan.h"
#include "tools/cli.h"

#define MAX_ARGS 64

static const char usage_compile[] =
	"usage: mpcc MODEL.onnx -o PLAN [options]\n"
	"Compiles an ONNX model into an mpcc plan.\n"
	"  -o PLAN                 where to write the plan (required)\n"
	"  --precision P           auto (default), fp32, fp16 or bf16; auto: policy,\n"
	"                          then calibrated ranges, then an error budget\n"
	"                          against the f32 plan (docs/precision.md)\n"
	"  --calib NAME=FILE.npy   auto: calibration data for input NAME (repeatable;\n"
	"                          inputs without get seeded random data)\n"
	"  --tolerance X           auto: error budget per output (default 1e-3)\n"
	"  --error-metric M        auto: rel-l2 (default: ||got-ref|| / ||ref||) or\n"
	"                          max-element (max |got-ref| / (1 + |ref|))\n"
	"  --seed N                auto: seed of the random calibration data (default 0)\n"
	"  --keep-fp32 OP|NODE,... keep these op types or node names in f32 (repeatable)\n"
	"  --force-low OP|NODE,... run these in the low dtype whatever the policy\n"
	"  --low-io                graph inputs and outputs in the low dtype too\n"
	"  --shape NAME=DIMS       bind input NAME's shape, e.g. x=1x3x224x224 (repeatable)\n"
	"  --freeze NAME=FILE.npy  freeze input NAME to this value: the plan is\n"
	"                          specialised to it (shape-deciding inputs)\n"
	"  --cuda-archs LIST       GPU binaries stored in the plan: default (sm_80 and\n"
	"                          sm_90 cubins, compute_90 PTX; when mpcc has NVRTC),\n"
	"                          none, or e.g. 80,90 or sm_90,compute_90; the cuda\n"
	"                          backend compiles at load what no stored one fits\n"
	"  --no-fold               skip constant folding\n"
	"  --no-fuse               skip kernel fusion (one kernel per op, for testing)\n"
	"  --dump-ir               print the graph after the passes to stdout\n"
	"  --dump-precision[=FILE] print the precision decisions as a table (stdout,\n"
	"                          or FILE): per node its dtypes, reason, range, error;\n"
	"                          then the FLOPs and bytes per dtype and the casts\n"
	"  --dump-precision-json FILE  the same as JSON (docs/precision-json.md)\n"
	"  --report FILE.html      one self-contained page: the graph coloured by\n"
	"                          precision, casts marked, the table beside it\n"
	"  -h, --help              this text\n"
	"Training (docs/training.md): --train compiles one training step instead, for\n"
	"`mpcc train`; every f32 initializer not frozen is trained, the batch size is\n"
	"the model's or --shape's.\n"
	"  --train                 compile the training step graph\n"
	"  --loss L                softmax_cross_entropy, nll (int64 labels [N]), mse\n"
	"                          (float labels shaped as the logits), or model (the\n"
	"                          model's own SoftmaxCrossEntropyLoss/NLL loss)\n"
	"  --label NAME            the label input (added; with --loss model, the\n"
	"                          loss's own label input, which is the default)\n"
	"  --logits NAME           the value the loss reads (default: the model's only\n"
	"                          float output)\n"
	"  --optimizer O           sgd, momentum, adam or adamw (beta1 0.9, beta2 0.999,\n"
	"                          eps 1e-8)\n"
	"  --lr X                  learning rate\n"
	"  --momentum X            momentum: its factor (default 0.9)\n"
	"  --weight-decay X        L2 (adamw: decoupled) weight decay (default 0)\n"
	"  --freeze-weights NAME,...  initializers kept constant (repeatable)\n"
	"  --loss-scale S          dynamic (from 65536, x2 after 2000 finite steps,\n"
	"                          x0.5 on overflow), off, or a static scale N > 0;\n"
	"                          default: dynamic for fp16 (and auto with f16 matrix\n"
	"                          ops), off otherwise\n";

static const char usage_run[] =
	"usage: mpcc run PLAN --input NAME=FILE.npy ... --output-dir DIR [options]\n"
	"Runs a plan and writes each output to DIR/NAME.npy (characters of NAME\n"
	"outside [A-Za-z0-9._-] become '_'). DIR is created if missing. Says on\n"
	"stderr which backend runs it and how (\"mpcc: backend: ...\").\n"
	"  --input NAME=FILE.npy   value of input NAME (one per plan input)\n"
	"  --output-dir DIR        where outputs go (required)\n"
	"  --backend B             cpu (LLVM JIT, default), interp (reference) or cuda\n"
	"  --bench N               3 warm-up runs, then N timed runs; prints\n"
	"                          median_ms=X min_ms=Y max_ms=Z last\n"
	"  --profile               time every launch (after --bench, over as many\n"
	"                          runs, else over 1 run) and print a table of them\n"
	"                          in schedule order, then profile_total_ms=X (the sum\n"
	"                          of the medians): on cuda device time by CUDA\n"
	"                          events, launches one by one (no CUDA graph), one\n"
	"                          row per stage; on cpu/interp host time, one row\n"
	"                          per kernel\n"
	"  -h, --help              this text\n";

static const char usage_inspect[] =
	"usage: mpcc inspect PLAN [--kernels] [--memory] [--precision] [--cuda]\n"
	"Prints a plan's inputs, outputs, tensor count, weight bytes and kernels,\n"
	"its stored GPU binaries (architecture, size); for a training step plan also\n"
	"its recipe, state pairs and roles.\n"
	"  --kernels               also print every kernel's ONNX nodes and its kernel IR\n"
	"  --memory                also print the session's planned arena (peak bytes of\n"
	"                          intermediates) against the sum of all intermediates,\n"
	"                          and the bytes the kernels move per run\n"
	"  --precision             also print the precision table (as --dump-precision)\n"
	"  --cuda                  also print each launch of the cuda backend: the\n"
	"                          stages it runs, its path (tiled matrix product on\n"
	"                          tensor cores, row kernel, cooperative reduction,\n"
	"                          vectorised, one thread per point) and its grid\n"
	"  -h, --help              this text\n";

static const char usage_explain[] =
	"usage: mpcc explain PLAN NODE\n"
	"Prints why NODE (an ONNX node name, or an id such as n12 or cast:x:f16 from\n"
	"the precision table) got its precision: the chain of evidence, what auto\n"
	"mode measured, its operands and the kernel that computes it.\n"
	"  -h, --help              this text\n";

static const char usage_top[] =
	"usage: mpcc MODEL.onnx -o PLAN [options]     compile a model\n"
	"       mpcc run PLAN --input NAME=FILE.npy ... --output-dir DIR [options]\n"
	"       mpcc inspect PLAN [--kernels] [--memory] [--precision] [--cuda]\n"
	"       mpcc explain PLAN NODE\n"
	"       mpcc train PLAN --data FILE.npz --epochs N --batch B [options]\n"
	"       mpcc export PLAN [--checkpoint CKPT] -o MODEL.onnx\n"
	"       mpcc --help | mpcc VERB --help\n"
	"\n";

int
mpcc_cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("mpcc: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int
mpcc_cli_vusage(const char *verb, const char *fmt, va_list ap)
{
	fputs("mpcc: ", stderr);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see mpcc %s--help)\n", verb);
	return 2;
}

bool
mpcc_cli_is_help(const char *a)
{
	return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

double
mpcc_cli_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int
usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int rc = mpcc_cli_vusage(usage == usage_run ? "run " : usage == usage_inspect ? "inspect "
	                         : usage == usage_explain ? "explain " : "", fmt, ap);
	va_end(ap);
	return rc;
}

static bool
is_help(const char *a)
{
	return mpcc_cli_is_help(a);
}

/* "1x3x224x224" into dims; false if malformed. */
static bool
parse_dims(const char *s, int *rank, int64_t *dims)
{
	*rank = 0;
	if (*s == 0)
		return true; /* scalar */
	for (;;) {
		char *end;
		errno = 0;
		long long v = strtoll(s, &end, 10);
		if (end == s || errno || v < 0 || *rank >= MPCC_MAX_RANK)
			return false;
		dims[(*rank)++] = v;
		if (*end == 0)
			return true;
		if (*end != 'x')
			return false;
		s = end + 1;
	}
}

/* Appends the comma-separated names of s (split in place) to list. */
static bool
split_list(char *s, const char **list, int *n)
{
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		if (*n >= MAX_ARGS)
			return false;
		list[(*n)++] = tok;
	}
	return true;
}

/* The precision dumps a compile asked for. */
typedef struct precision_dumps {
	bool text;             /* --dump-precision[=FILE] */
	const char *text_path; /* NULL: stdout */
	const char *json_path; /* --dump-precision-json FILE */
	const char *html_path; /* --report FILE.html */
} precision_dumps;

/* Writes text to path, or to stdout when path is NULL; 0 or 1 (reported). */
static int
write_text(const char *path, const char *text)
{
	FILE *f = path ? fopen(path, "w") : stdout;
	size_t n = strlen(text);

	if (!f)
		return mpcc_cli_fail("cannot write '%s': %s", path, strerror(errno));
	bool ok = fwrite(text, 1, n, f) == n;
	if (path)
		ok = (fclose(f) == 0) && ok;
	else
		ok = (fflush(f) == 0) && ok;
	if (!ok)
		return mpcc_cli_fail("cannot write '%s'", path ? path : "(stdout)");
	return 0;
}

static int
dump_one(mpcc_context *cx, const mpcc_plan *plan, mpcc_dump_format fmt, const char *path)
{
	char *text;
	if (mpcc_plan_precision_dump(cx, plan, fmt, &text) != MPCC_OK)
		return mpcc_cli_fail("%s", mpcc_context_last_error(cx));
	int rc = write_text(path, text);
	mpcc_free(text);
	return rc;
}

/*
 * Why the dumps read the plan back instead of the graph: `mpcc inspect
 * --precision` can only see the plan, and going through the same public
 * call makes the compile-time dump and the inspected one identical.
 */
static int
write_precision_dumps(mpcc_context *cx, const char *plan_path, const precision_dumps *pd)
{
	mpcc_plan *plan;
	int rc = 0;

	if (!pd->text && !pd->json_path && !pd->html_path)
		return 0;
	if (mpcc_plan_load(cx, plan_path, &plan) != MPCC_OK)
		return mpcc_cli_fail("%s", mpcc_context_last_error(cx));
	if (pd->text)
		rc |= dump_one(cx, plan, MPCC_DUMP_TEXT, pd->text_path);
	if (pd->json_path)
		rc |= dump_one(cx, plan, MPCC_DUMP_JSON, pd->json_path);
	if (pd->html_path)
		rc |= dump_one(cx, plan, MPCC_DUMP_HTML, pd->html_path);
	mpcc_plan_destroy(plan);
	return rc;
}

/* The training flags of a compile, gathered, then checked together. */
typedef struct train_cli {
	bool on;                        /* --train */
	bool has_loss, has_optimizer, has_lr, has_label, has_momentum;
	const char *flag;               /* some training flag, for "needs --train" */
	const char *frozen[MAX_ARGS];   /* --freeze-weights */
	mpcc_train_options o;
} train_cli;

/* A number from the argument of flag, within [lo, hi] (exclusive of lo when
 * lo_open); false (reported) otherwise. */
static bool
parse_number(const char *flag, const char *s, double lo, bool lo_open, double *out)
{
	char *end;
	errno = 0;
	*out = strtod(s, &end);
	if (end == s || *end || errno || !(*out >= lo) || (lo_open && *out == lo) ||
	    *out > 1e300) {
		usage_error(usage_compile, "%s wants a number %s %g, got '%s'", flag,
		            lo_open ? ">" : ">=", lo, s);
		return false;
	}
	return true;
}

/*
 * argv[*i] if it is a training flag (its value at argv[*i + 1]): 0 when it
 * is consumed, 2 after a usage error was printed, -1 when it is not one.
 */
static int
parse_train_flag(int argc, char **argv, int *i, train_cli *t)
{
	static const char *const losses[] = {"softmax_cross_entropy", "mse", "nll", "model"};
	static const char *const optimizers[] = {"sgd", "momentum", "adam", "adamw"};
	const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;

	if (strcmp(a, "--train") == 0) {
		t->on = true;
		return 0;
	}
	if (strcmp(a, "--loss") && strcmp(a, "--label") && strcmp(a, "--logits") &&
	    strcmp(a, "--optimizer") && strcmp(a, "--lr") && strcmp(a, "--momentum") &&
	    strcmp(a, "--weight-decay") && strcmp(a, "--freeze-weights") &&
	    strcmp(a, "--loss-scale"))
		return -1;
	if (!v)
		return usage_error(usage_compile, "%s wants a value", a);
	++*i;
	t->flag = a;
	if (strcmp(a, "--loss") == 0) {
		for (int k = 0; k < 4; k++)
			if (strcmp(v, losses[k]) == 0) {
				t->o.loss = (mpcc_loss)k;
				t->has_loss = true;
				return 0;
			}
		return usage_error(usage_compile, "unknown loss '%s' (choices: softmax_cross_entropy, "
		                   "mse, nll, model)", v);
	}
	if (strcmp(a, "--optimizer") == 0) {
		for (int k = 0; k < 4; k++)
			if (strcmp(v, optimizers[k]) == 0) {
				t->o.optimizer = (mpcc_optimizer)k;
				t->has_optimizer = true;
				return 0;
			}
		return usage_error(usage_compile, "unknown optimizer '%s' (choices: sgd, momentum, "
		                   "adam, adamw)", v);
	}
	if (strcmp(a, "--label") == 0 || strcmp(a, "--logits") == 0) {
		if (!v[0])
			return usage_error(usage_compile, "%s wants a NAME", a);
		*(a[3] == 'a' ? &t->o.label : &t->o.logits) = v;
		t->has_label = t->has_label || a[3] == 'a';
		return 0;
	}
	if (strcmp(a, "--freeze-weights") == 0) {
		if (!split_list(argv[*i], t->frozen, &t->o.n_frozen_weights))
			return usage_error(usage_compile, "--freeze-weights wants NAME,... (at most %d)",
			                   MAX_ARGS);
		t->o.frozen_weights = t->frozen;
		return 0;
	}
	if (strcmp(a, "--loss-scale") == 0) {
		if (strcmp(v, "dynamic") == 0)
			t->o.loss_scaling = MPCC_LOSS_SCALING_DYNAMIC;
		else if (strcmp(v, "off") == 0)
			t->o.loss_scaling = MPCC_LOSS_SCALING_OFF;
		else {
			char *end;
			errno = 0;
			t->o.loss_scale = strtod(v, &end);
			if (end == v || *end || errno || !(t->o.loss_scale > 0) ||
			    t->o.loss_scale > 3e38)
				return usage_error(usage_compile, "--loss-scale wants dynamic, off or a "
				                   "number > 0, got '%s'", v);
			t->o.loss_scaling = MPCC_LOSS_SCALING_STATIC;
		}
		return 0;
	}
	if (strcmp(a, "--lr") == 0) {
		t->has_lr = true;
		return parse_number(a, v, 0, true, &t->o.lr) ? 0 : 2;
	}
	if (strcmp(a, "--momentum") == 0) {
		t->has_momentum = true;
		if (!parse_number(a, v, 0, false, &t->o.momentum))
			return 2;
		return t->o.momentum < 1 ? 0 : usage_error(usage_compile, "--momentum wants a number "
		                                          "in [0, 1), got '%s'", v);
	}
	return parse_number(a, v, 0, false, &t->o.weight_decay) ? 0 : 2; /* --weight-decay */
}

/* The training flags as a whole: 0, or 2 after a usage error. */
static int
check_train_flags(const train_cli *t)
{
	if (!t->on)
		return t->flag ? usage_error(usage_compile, "%s needs --train", t->flag) : 0;
	if (!t->has_loss)
		return usage_error(usage_compile, "--train needs --loss (softmax_cross_entropy, mse, "
		                   "nll or model)");
	if (!t->has_label && t->o.loss != MPCC_LOSS_MODEL)
		return usage_error(usage_compile, "--train needs --label NAME, the label input");
	if (!t->has_optimizer)
		return usage_error(usage_compile, "--train needs --optimizer (sgd, momentum, adam or "
		                   "adamw)");
	if (!t->has_lr)
		return usage_error(usage_compile, "--train needs --lr X, the learning rate");
	if (t->has_momentum && t->o.optimizer != MPCC_OPTIMIZER_MOMENTUM)
		return usage_error(usage_compile, "--momentum applies to --optimizer momentum only");
	return 0;
}

static int
cmd_compile(int argc, char **argv)
{
	const char *model = NULL, *plan_path = NULL;
	mpcc_compile_options opts;
	mpcc_shape_binding shapes[MAX_ARGS];
	char *shape_names[MAX_ARGS];
	mpcc_tensor frozen[MAX_ARGS], calib[MAX_ARGS];
	const char *keep[MAX_ARGS], *force[MAX_ARGS];
	bool dump_ir = false;
	precision_dumps dumps = {0};
	train_cli train = {0};
	int rc = 0;

	mpcc_compile_options_init(&opts);
	mpcc_train_options_init(&train.o);
	opts.cuda_archs = "default"; /* the library's default is none */
	opts.shapes = shapes;
	opts.frozen = frozen;
	opts.calib = calib;
	opts.keep_fp32 = keep;
	opts.force_low = force;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		int trc = parse_train_flag(argc, argv, &i, &train);
		if (trc >= 0) {
			if (trc)
				return trc;
		} else if (is_help(a)) {
			fputs(usage_compile, stdout);
			return 0;
		} else if (strcmp(a, "-o") == 0 && i + 1 < argc) {
			plan_path = argv[++i];
		} else if (strcmp(a, "--precision") == 0 && i + 1 < argc) {
			const char *p = argv[++i];
			if (strcmp(p, "fp32") == 0)
				opts.precision = MPCC_PRECISION_FP32;
			else if (strcmp(p, "fp16") == 0)
				opts.precision = MPCC_PRECISION_FP16;
			else if (strcmp(p, "bf16") == 0)
				opts.precision = MPCC_PRECISION_BF16;
			else if (strcmp(p, "auto") == 0)
				opts.precision = MPCC_PRECISION_AUTO;
			else
				return usage_error(usage_compile, "unknown precision '%s' "
				                   "(choices: fp32, fp16, bf16, auto)", p);
		} else if (strcmp(a, "--shape") == 0 && i + 1 < argc) {
			char *arg = argv[++i], *eq = strchr(arg, '=');
			mpcc_shape_binding *b = &shapes[opts.n_shapes];
			if (!eq || eq == arg || opts.n_shapes >= MAX_ARGS)
				return usage_error(usage_compile, "--shape wants NAME=DIMS, got '%s'", arg);
			*eq = 0;
			if (!parse_dims(eq + 1, &b->rank, b->dims))
				return usage_error(usage_compile, "--shape %s: bad dims '%s' (e.g. 1x3x224x224)",
				                   arg, eq + 1);
			shape_names[opts.n_shapes] = arg;
			b->input = shape_names[opts.n_shapes];
			opts.n_shapes++;
		} else if (strcmp(a, "--freeze") == 0 && i + 1 < argc) {
			char *arg = argv[++i], *eq = strchr(arg, '=');
			if (!eq || eq == arg || opts.n_frozen >= MAX_ARGS)
				return usage_error(usage_compile, "--freeze wants NAME=FILE.npy, got '%s'", arg);
			*eq = 0;
			mpcc_diag d;
			mpcc_diag_init(&d);
			mpcc_tensor *t = &frozen[opts.n_frozen];
			if (mpcc_npy_read_file(eq + 1, t, &d) != MPCC_OK)
				return mpcc_cli_fail("--freeze %s: %s", arg, d.msg);
			t->name = arg;
			opts.n_frozen++;
		} else if ((strcmp(a, "--keep-fp32") == 0 || strcmp(a, "--force-low") == 0) &&
		           i + 1 < argc) {
			bool k = a[2] == 'k';
			if (!split_list(argv[++i], k ? keep : force, k ? &opts.n_keep_fp32
			                                                : &opts.n_force_low))
				return usage_error(usage_compile, "%s wants OP|NODE,... (at most %d)", a,
				                   MAX_ARGS);
		} else if (strcmp(a, "--calib") == 0 && i + 1 < argc) {
			char *arg = argv[++i], *eq = strchr(arg, '=');
			if (!eq || eq == arg || opts.n_calib >= MAX_ARGS)
				return usage_error(usage_compile, "--calib wants NAME=FILE.npy, got '%s'", arg);
			*eq = 0;
			mpcc_diag d;
			mpcc_diag_init(&d);
			mpcc_tensor *t = &calib[opts.n_calib];
			if (mpcc_npy_read_file(eq + 1, t, &d) != MPCC_OK)
				return mpcc_cli_fail("--calib %s: %s", arg, d.msg);
			t->name = arg;
			opts.n_calib++;
		} else if (strcmp(a, "--tolerance") == 0 && i + 1 < argc) {
			char *end;
			opts.tolerance = strtod(argv[++i], &end);
			if (end == argv[i] || *end || !(opts.tolerance > 0))
				return usage_error(usage_compile, "--tolerance wants a number > 0, got '%s'",
				                   argv[i]);
		} else if (strcmp(a, "--error-metric") == 0 && i + 1 < argc) {
			const char *m = argv[++i];
			if (strcmp(m, "rel-l2") == 0)
				opts.error_metric = MPCC_ERROR_METRIC_REL_L2;
			else if (strcmp(m, "max-element") == 0)
				opts.error_metric = MPCC_ERROR_METRIC_MAX_ELEMENT;
			else
				return usage_error(usage_compile, "unknown error metric '%s' "
				                   "(choices: rel-l2, max-element)", m);
		} else if (strcmp(a, "--seed") == 0 && i + 1 < argc) {
			char *end;
			errno = 0;
			opts.seed = strtoull(argv[++i], &end, 10);
			if (end == argv[i] || *end || errno || argv[i][0] == '-')
				return usage_error(usage_compile, "--seed wants a number >= 0, got '%s'",
				                   argv[i]);
		} else if (strcmp(a, "--cuda-archs") == 0 && i + 1 < argc) {
			mpcc_cuda_target t[MPCC_CUDA_MAX_TARGETS];
			int n;
			mpcc_diag d;
			mpcc_diag_init(&d);
			opts.cuda_archs = argv[++i];
			if (mpcc_cuda_targets_parse(opts.cuda_archs, t, &n, &d) != MPCC_OK)
				return usage_error(usage_compile, "%s", d.msg);
		} else if (strcmp(a, "--low-io") == 0) {
			opts.low_io = true;
		} else if (strcmp(a, "--no-fold") == 0) {
			opts.no_fold = true;
		} else if (strcmp(a, "--no-fuse") == 0) {
			opts.no_fuse = true;
		} else if (strcmp(a, "--dump-ir") == 0) {
			dump_ir = true;
		} else if (strcmp(a, "--dump-precision") == 0) {
			dumps.text = true;
		} else if (strncmp(a, "--dump-precision=", 17) == 0 && a[17]) {
			dumps.text = true;
			dumps.text_path = a + 17;
		} else if (strcmp(a, "--dump-precision-json") == 0 && i + 1 < argc) {
			dumps.json_path = argv[++i];
		} else if (strcmp(a, "--report") == 0 && i + 1 < argc) {
			dumps.html_path = argv[++i];
		} else if (a[0] == '-') {
			return usage_error(usage_compile, "unknown or incomplete option '%s'", a);
		} else if (!model) {
			model = a;
		} else {
			return usage_error(usage_compile, "more than one model given ('%s')", a);
		}
	}
	if (!model || !plan_path)
		return usage_error(usage_compile, "%s", !model ? "no model given" : "-o PLAN is required");
	if ((rc = check_train_flags(&train)))
		return rc;
	if (train.on)
		opts.train = &train.o;

	if (dump_ir) {
		mpcc_graph *g = NULL;
		mpcc_diag d;
		mpcc_diag_init(&d);
		mpcc_status st = mpcc_autoprec_pipeline_file(model, &opts, &g, &d);
		if (st == MPCC_OK) {
			char *text = mpcc_graph_print(g);
			if (text)
				fputs(text, stdout);
			free(text);
		}
		mpcc_graph_destroy(g);
		if (st != MPCC_OK)
			return mpcc_cli_fail("%s", d.msg);
	}

	mpcc_context *cx;
	if (mpcc_context_create(&cx) != MPCC_OK)
		rc = mpcc_cli_fail("out of memory");
	else if (mpcc_compile_file(cx, model, &opts, plan_path) != MPCC_OK)
		rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
	else
		rc = write_precision_dumps(cx, plan_path, &dumps);
	mpcc_context_destroy(cx);
	for (int i = 0; i < opts.n_frozen; i++)
		free(frozen[i].data);
	for (int i = 0; i < opts.n_calib; i++)
		free(calib[i].data);
	return rc;
}

/* NAME with every char outside [A-Za-z0-9._-] replaced by '_'. */
static void
safe_name(char *out, size_t n, const char *name)
{
	size_t i;

	for (i = 0; name[i] && i + 1 < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		          c == '.' || c == '_' || c == '-';
		out[i] = ok ? c : '_';
	}
	out[i] = 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int
bench(mpcc_session *s, mpcc_context *cx, long n)
{
	double *t = malloc(sizeof(double) * (size_t)n);

	if (!t)
		return mpcc_cli_fail("out of memory");
	for (int i = 0; i < 3; i++)
		if (mpcc_session_run(s) != MPCC_OK) {
			free(t);
			return mpcc_cli_fail("%s", mpcc_context_last_error(cx));
		}
	for (long i = 0; i < n; i++) {
		double t0 = mpcc_cli_now_ms();
		if (mpcc_session_run(s) != MPCC_OK) {
			free(t);
			return mpcc_cli_fail("%s", mpcc_context_last_error(cx));
		}
		t[i] = mpcc_cli_now_ms() - t0;
	}
	qsort(t, (size_t)n, sizeof(double), cmp_double);
	double median = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
	printf("median_ms=%.4f min_ms=%.4f max_ms=%.4f\n", median, t[0], t[n - 1]);
	free(t);
	return 0;
}

/* The per-launch table of --profile, on stdout. */
static int
profile(mpcc_session *s, mpcc_context *cx, const char *backend, long n)
{
	mpcc_launch_time *lt;
	int count;
	double total = 0;
	bool dev = backend && strcmp(backend, "cuda") == 0;

	if (mpcc_session_profile(s, (int)n, &lt, &count) != MPCC_OK)
		return mpcc_cli_fail("%s", mpcc_context_last_error(cx));
	printf("profile: %s, %s, median over %ld run%s\n", backend ? backend : "cpu",
	       dev ? "device time per launch (CUDA events, launched one by one)"
	           : "host time per kernel",
	       n, n == 1 ? "" : "s");
	printf("%4s  %-40s %5s %9s %6s %11s %11s %11s\n", "#", "kernel", "stage", "grid", "block",
	       "median_ms", "min_ms", "max_ms");
	for (int i = 0; i < count; i++) {
		char stage[16] = "-", grid[16] = "-", block[16] = "-";
		if (lt[i].stage >= 0)
			snprintf(stage, sizeof(stage), "%d", lt[i].stage);
		if (lt[i].grid) {
			snprintf(grid, sizeof(grid), "%u", lt[i].grid);
			snprintf(block, sizeof(block), "%u", lt[i].block);
		}
		printf("%4d  %-40s %5s %9s %6s %11.4f %11.4f %11.4f\n", i, lt[i].kernel, stage, grid,
		       block, lt[i].median_ms, lt[i].min_ms, lt[i].max_ms);
		total += lt[i].median_ms;
	}
	printf("profile_total_ms=%.4f\n", total);
	mpcc_free(lt);
	return 0;
}

/*
 * Why inputs are read before the session is created: a typo in a file name
 * should fail at once, before the JIT spends seconds compiling. Outputs are
 * written only after every run (and the bench) succeeded.
 */
static int
cmd_run(int argc, char **argv)
{
	const char *plan_path = NULL, *out_dir = NULL, *backend = NULL;
	char *in_names[MAX_ARGS];
	const char *in_files[MAX_ARGS];
	mpcc_tensor in_t[MAX_ARGS];
	int n_in = 0, rc = 0;
	long n_bench = 0;
	bool want_profile = false;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (is_help(a)) {
			fputs(usage_run, stdout);
			return 0;
		} else if (strcmp(a, "--input") == 0 && i + 1 < argc) {
			char *arg = argv[++i], *eq = strchr(arg, '=');
			if (!eq || eq == arg || n_in >= MAX_ARGS)
				return usage_error(usage_run, "--input wants NAME=FILE.npy, got '%s'", arg);
			*eq = 0;
			in_names[n_in] = arg;
			in_files[n_in++] = eq + 1;
		} else if (strcmp(a, "--output-dir") == 0 && i + 1 < argc) {
			out_dir = argv[++i];
		} else if (strcmp(a, "--backend") == 0 && i + 1 < argc) {
			backend = argv[++i];
			if (strcmp(backend, "cpu") != 0 && strcmp(backend, "interp") != 0 &&
			    strcmp(backend, "cuda") != 0)
				return usage_error(usage_run,
				                   "unknown backend '%s' (choices: cpu, interp, cuda)",
				                   backend);
		} else if (strcmp(a, "--bench") == 0 && i + 1 < argc) {
			char *end;
			n_bench = strtol(argv[++i], &end, 10);
			if (*end || n_bench < 1 || n_bench > 1000000)
				return usage_error(usage_run, "--bench wants a count >= 1, got '%s'", argv[i]);
		} else if (strcmp(a, "--profile") == 0) {
			want_profile = true;
		} else if (a[0] == '-') {
			return usage_error(usage_run, "unknown or incomplete option '%s'", a);
		} else if (!plan_path) {
			plan_path = a;
		} else {
			return usage_error(usage_run, "more than one plan given ('%s')", a);
		}
	}
	if (!plan_path || !out_dir)
		return usage_error(usage_run, "%s", !plan_path ? "no plan given" :
		                   "--output-dir DIR is required");

	mpcc_context *cx = NULL;
	mpcc_plan *plan = NULL;
	mpcc_session *s = NULL;
	int n_read = 0;
	if (mpcc_context_create(&cx) != MPCC_OK)
		return mpcc_cli_fail("out of memory");
	if (mpcc_plan_load(cx, plan_path, &plan) != MPCC_OK) {
		rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
		goto done;
	}
	for (; n_read < n_in; n_read++) {
		mpcc_diag d;
		mpcc_diag_init(&d);
		if (mpcc_npy_read_file(in_files[n_read], &in_t[n_read], &d) != MPCC_OK) {
			rc = mpcc_cli_fail("input '%s': %s", in_names[n_read], d.msg);
			goto done;
		}
	}
	if (mpcc_session_create(cx, plan, backend, &s) != MPCC_OK) {
		rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
		goto done;
	}
	fprintf(stderr, "mpcc: backend: %s\n", mpcc_session_backend(s));
	for (int i = 0; i < n_in; i++) {
		if (mpcc_session_set_input(s, in_names[i], in_t[i].dtype, in_t[i].rank, in_t[i].dims,
		                           in_t[i].data, in_t[i].nbytes) != MPCC_OK) {
			rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
			goto done;
		}
	}
	if (mpcc_session_run(s) != MPCC_OK) {
		rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
		goto done;
	}
	if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
		rc = mpcc_cli_fail("cannot create '%s': %s", out_dir, strerror(errno));
		goto done;
	}
	for (int i = 0; i < mpcc_plan_n_outputs(plan); i++) {
		mpcc_tensor t;
		mpcc_diag d;
		char name[256], path[4096];
		mpcc_diag_init(&d);
		if (mpcc_session_output(s, i, &t) != MPCC_OK) {
			rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
			goto done;
		}
		safe_name(name, sizeof(name), t.name);
		snprintf(path, sizeof(path), "%s/%s.npy", out_dir, name);
		if (mpcc_npy_write_file(path, &t, &d) != MPCC_OK) {
			rc = mpcc_cli_fail("output '%s': %s", t.name, d.msg);
			goto done;
		}
	}
	if (n_bench > 0)
		rc = bench(s, cx, n_bench);
	if (rc == 0 && want_profile)
		rc = profile(s, cx, backend, n_bench > 0 ? n_bench : 1);
done:
	for (int i = 0; i < n_read; i++)
		free(in_t[i].data);
	mpcc_session_destroy(s);
	mpcc_plan_destroy(plan);
	mpcc_context_destroy(cx);
	return rc;
}

static void
print_tensor(const char *what, const mpcc_tensor *t)
{
	printf("%s %s: %s [", what, t->name, mpcc_dtype_name(t->dtype));
	for (int k = 0; k < t->rank; k++)
		printf("%s%lld", k ? "," : "", (long long)t->dims[k]);
	printf("]\n");
}

/* Bytes the plan's kernels move per run when each reads and writes every
 * tensor it is bound to once (scratch inside a kernel not counted): the
 * traffic fusion saves, in one figure. */
static size_t
bytes_moved(const mpcc_plan *p)
{
	size_t total = 0;
	for (int k = 0; k < p->n_kernels; k++) {
		const kir_kernel *kk = p->kernels[k];
		for (int b = 0; b < kk->n_bufs; b++)
			if (kk->bufs[b].kind == KIR_BUF_PARAM)
				total += (size_t)kk->bufs[b].n_elems *
				         mpcc_dtype_size((mpcc_dtype)kk->bufs[b].dtype);
	}
	return total;
}

static void
print_shape(const mpcc_tensor *t)
{
	printf("%s [", mpcc_dtype_name(t->dtype));
	for (int k = 0; k < t->rank; k++)
		printf("%s%lld", k ? "," : "", (long long)t->dims[k]);
	printf("]");
}

/* One role of a training plan: "  loss: 'name' f32 []" or "  loss: none". */
static void
print_role(const char *role, const mpcc_plan *p, int pos, bool input)
{
	printf("  %s: ", role);
	if (pos < 0) {
		printf("none\n");
		return;
	}
	const mpcc_tensor *t = input ? &p->input_desc[pos] : &p->output_desc[pos];
	printf("'%s' ", t->name);
	print_shape(t);
	printf("\n");
}

/* The plan's section TRAN: recipe, state pairs, roles. */
static void
print_training(const mpcc_plan *p)
{
	const mpcc_plan_train *t = p->train;

	printf("training: %s\n", t->recipe[0] ? t->recipe : "(no description)");
	for (int i = 0; i < t->n_state; i++) {
		const mpcc_tensor *in = &p->input_desc[t->state[i].in];
		printf("  state '%s' ", in->name);
		print_shape(in);
		printf(" -> '%s'\n", p->output_desc[t->state[i].out].name);
	}
	print_role("label", p, t->label, true);
	print_role("loss", p, t->loss, false);
	print_role("logits", p, t->logits, false);
	print_role("loss scale", p, t->loss_scale, false);
	print_role("ok", p, t->ok, false);
	print_role("apply", p, t->apply, true);
}

/* Section CUDA: the source's size and each stored GPU binary. */
static void
print_cuda(const mpcc_plan *p)
{
	char name[48];

	if (!p->cuda) {
		printf("cuda: no GPU binaries (the cuda backend compiles at load)\n");
		return;
	}
	printf("cuda: source %zu bytes, %d binar%s\n", strlen(p->cuda->source), p->cuda->n_images,
	       p->cuda->n_images == 1 ? "y" : "ies");
	for (int i = 0; i < p->cuda->n_images; i++) {
		const mpcc_plan_cuda_image *im = &p->cuda->images[i];
		printf("cuda binary: %s, %zu bytes, NVRTC %d.%d\n",
		       mpcc_cuda_image_name(name, sizeof(name), im->kind, im->arch), im->size,
		       im->nvrtc_version / 1000, im->nvrtc_version % 1000 / 10);
	}
}

static int
cmd_inspect(int argc, char **argv)
{
	const char *plan_path = NULL;
	bool kernels = false, memory = false, precision = false, cuda = false;

	for (int i = 0; i < argc; i++) {
		if (is_help(argv[i])) {
			fputs(usage_inspect, stdout);
			return 0;
		} else if (strcmp(argv[i], "--precision") == 0) {
			precision = true;
		} else if (strcmp(argv[i], "--kernels") == 0) {
			kernels = true;
		} else if (strcmp(argv[i], "--memory") == 0) {
			memory = true;
		} else if (strcmp(argv[i], "--cuda") == 0) {
			cuda = true;
		} else if (argv[i][0] == '-') {
			return usage_error(usage_inspect, "unknown option '%s'", argv[i]);
		} else if (!plan_path) {
			plan_path = argv[i];
		} else {
			return usage_error(usage_inspect, "more than one plan given ('%s')", argv[i]);
		}
	}
	if (!plan_path)
		return usage_error(usage_inspect, "no plan given");

	mpcc_context *cx;
	mpcc_plan *p;
	if (mpcc_context_create(&cx) != MPCC_OK)
		return mpcc_cli_fail("out of memory");
	if (mpcc_plan_load(cx, plan_path, &p) != MPCC_OK) {
		int rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
		mpcc_context_destroy(cx);
		return rc;
	}
	for (int i = 0; i < p->n_inputs; i++)
		print_tensor("input", &p->input_desc[i]);
	for (int i = 0; i < p->n_outputs; i++)
		print_tensor("output", &p->output_desc[i]);
	printf("tensors: %d\nweight bytes: %zu\nkernels: %d\n", p->n_tensors, p->weights_size,
	       p->n_kernels);
	for (int k = 0; k < p->n_kernels; k++) {
		printf("kernel %s: %d stage%s\n", p->kernels[k]->name, p->kernels[k]->n_stages,
		       p->kernels[k]->n_stages == 1 ? "" : "s");
		if (kernels) {
			if (p->kernel_nodes)
				printf("  nodes: %s\n", p->kernel_nodes[k]);
			char *text = kir_print(p->kernels[k]);
			if (text)
				fputs(text, stdout);
			free(text);
		}
	}
	if (p->train)
		print_training(p);
	print_cuda(p);
	if (cuda) {
		char *text;
		mpcc_diag d;

		mpcc_diag_init(&d);
		if (mpcc_plan_cuda_describe(p, &text, &d) != MPCC_OK) {
			mpcc_plan_destroy(p);
			mpcc_context_destroy(cx);
			return mpcc_cli_fail("%s", d.msg);
		}
		fputs(text, stdout);
		free(text);
	}
	if (memory) {
		mpcc_memplan mp;
		if (mpcc_memplan_build(p, &mp) != MPCC_OK) {
			mpcc_plan_destroy(p);
			mpcc_context_destroy(cx);
			return mpcc_cli_fail("cannot plan the plan's memory");
		}
		size_t out_bytes = 0;
		for (int i = 0; i < p->n_outputs; i++)
			out_bytes += p->output_desc[i].nbytes;
		printf("memory: %d intermediates (TEMPs included), sum %zu bytes\n", mp.n_planned,
		       mp.sum_intermediates);
		printf("memory: arena peak %zu bytes (%.1f%% of the sum)\n", mp.arena_size,
		       mp.sum_intermediates ? 100.0 * (double)mp.arena_size /
		                                  (double)mp.sum_intermediates
		                            : 100.0);
		printf("memory: outputs %zu bytes, weights %zu bytes (not planned)\n", out_bytes,
		       p->weights_size);
		printf("memory: moved per run %zu bytes (each kernel reading and writing its "
		       "tensors once)\n", bytes_moved(p));
		mpcc_memplan_fini(&mp);
	}
	int rc = 0;
	if (precision) {
		char *text;
		mpcc_status st = mpcc_plan_precision_dump(cx, p, MPCC_DUMP_TEXT, &text);
		if (st == MPCC_OK)
			rc = write_text(NULL, text);
		else if (st == MPCC_ERR_UNSUPPORTED)
			printf("precision: %s\n", mpcc_context_last_error(cx));
		else
			rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
		mpcc_free(text);
	}
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
	return rc;
}

static int
cmd_explain(int argc, char **argv)
{
	const char *plan_path = NULL, *node = NULL;

	for (int i = 0; i < argc; i++) {
		if (is_help(argv[i])) {
			fputs(usage_explain, stdout);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1] == '-') {
			return usage_error(usage_explain, "unknown option '%s'", argv[i]);
		} else if (!plan_path) {
			plan_path = argv[i];
		} else if (!node) {
			node = argv[i];
		} else {
			return usage_error(usage_explain, "one plan and one node, got also '%s'", argv[i]);
		}
	}
	if (!plan_path || !node)
		return usage_error(usage_explain, "%s", !plan_path ? "no plan given" : "no node given");

	mpcc_context *cx;
	mpcc_plan *p = NULL;
	char *text = NULL;
	int rc = 0;
	if (mpcc_context_create(&cx) != MPCC_OK)
		return mpcc_cli_fail("out of memory");
	if (mpcc_plan_load(cx, plan_path, &p) != MPCC_OK ||
	    mpcc_plan_explain(cx, p, node, &text) != MPCC_OK)
		rc = mpcc_cli_fail("%s", mpcc_context_last_error(cx));
	else
		rc = write_text(NULL, text);
	mpcc_free(text);
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		return usage_error(usage_top, "no model or verb given");
	if (is_help(argv[1])) {
		fputs(usage_top, stdout);
		fputs(usage_compile, stdout);
		fputc('\n', stdout);
		fputs(usage_run, stdout);
		fputc('\n', stdout);
		fputs(usage_inspect, stdout);
		fputc('\n', stdout);
		fputs(usage_explain, stdout);
		fputc('\n', stdout);
		fputs(mpcc_cli_usage_train, stdout);
		fputc('\n', stdout);
		fputs(mpcc_cli_usage_export, stdout);
		return 0;
	}
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 2, argv + 2);
	if (strcmp(argv[1], "inspect") == 0)
		return cmd_inspect(argc - 2, argv + 2);
	if (strcmp(argv[1], "explain") == 0)
		return cmd_explain(argc - 2, argv + 2);
	if (strcmp(argv[1], "train") == 0)
		return mpcc_cli_train(argc - 2, argv + 2);
	if (strcmp(argv[1], "export") == 0)
		return mpcc_cli_export(argc - 2, argv + 2);
	return cmd_compile(argc - 1, argv + 1);
}
