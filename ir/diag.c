/*
 * diag.c - the diagnostics sink: the first error wins, kept as one line.
 *
 * Later errors are usually consequences of the first, so they are dropped.
 * Newlines and tabs in a message become spaces so the CLI can print the
 * message as one line on stderr.
 */
#include <stdio.h>
#include <string.h>

#include "ir/ir.h"

void
mpcc_diag_init(mpcc_diag *d)
{
	d->status = MPCC_OK;
	d->msg[0] = '\0';
}

mpcc_status
mpcc_diag_verror(mpcc_diag *d, mpcc_status st, const char *fmt, va_list ap)
{
	size_t n;

	if (!d || d->status != MPCC_OK || st == MPCC_OK)
		return st;
	d->status = st;
	vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
	for (char *p = d->msg; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	n = strlen(d->msg);
	while (n > 0 && d->msg[n - 1] == ' ')
		d->msg[--n] = '\0';
	return st;
}

mpcc_status
mpcc_diag_error(mpcc_diag *d, mpcc_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mpcc_diag_verror(d, st, fmt, ap);
	va_end(ap);
	return st;
}

/*
 * The node prefix is formatted first and the message appended, so one
 * vsnprintf into the tail of the buffer does the rest without a temporary.
 */
mpcc_status
mpcc_node_error(mpcc_diag *d, const mpcc_node *n, mpcc_status st, const char *fmt, ...)
{
	char buf[sizeof(d->msg)];
	int k;
	va_list ap;

	if (!d || d->status != MPCC_OK || st == MPCC_OK)
		return st;
	k = snprintf(buf, sizeof(buf), "node '%s' (%s, opset %d): ", n->name ? n->name : "?",
	             mpcc_op_name(n->op), n->opset);
	if (k < 0)
		k = 0;
	if ((size_t)k >= sizeof(buf))
		k = sizeof(buf) - 1;
	va_start(ap, fmt);
	vsnprintf(buf + k, sizeof(buf) - (size_t)k, fmt, ap);
	va_end(ap);
	return mpcc_diag_error(d, st, "%s", buf);
}
