/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mig-info - describe a stream: every layer it can open without a key
 * (kind, parameters, META, frames, sizes), then the raw QEMU stream
 * inside (header, machine, RAM blocks and pages, devices).
 *
 * It reads the whole stream, so it also verifies it: the exit status is 0
 * only for a stream read to a verified end (every layer's END checked, and
 * the QEMU stream inside complete in QEMU's order), which makes
 * `mig-info -q FILE` a test of a checkpoint. A layer it cannot open (it
 * needs a key) is followed to its END frame without being decoded, and
 * reported as not verified, with a status of its own.
 *
 * A libvirt save image (virsh save, managedsave) starts with libvirt's
 * header and the domain XML: they are read and shown first, then what
 * follows is described as any stream (the QEMU stream of a raw image, or
 * migkit's layers when the image was saved through mig-libvirt-hook).
 * Such an image is complete only if libvirt finished it (magic
 * LibvirtQemudSave); one compressed by a program other than migkit's
 * hook cannot be verified here (EXIT_NOT_VERIFIED).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "all.h"
#include "libvirt-image.h"
#include "mig.h"
#include "qemu-compact.h"
#include "qemu-stream.h"
#include "tagged.h"

#define MAX_LAYERS 16

/* Exit status: the framing of a layer that needs a key (or is of a kind
 * this program does not know) ended with END, but its content, and the
 * QEMU stream inside, were not verified. See mig-info(1) and mig(7). */
#define EXIT_NOT_VERIFIED 5

struct layer {
	const struct mig_filter *f;
	void *st;
	struct mig_src *src;
	uint8_t kind;
};

struct info {
	const char *name;
	struct mig_src *base;
	bool has_libvirt;           /* a libvirt save image: its header */
	struct lv_image lv;
	struct layer layers[MAX_LAYERS];
	size_t nlayers;
	enum mig_input_type inner;  /* what the innermost bytes are */
	uint8_t closed_kind;        /* a layer this program cannot open */
	struct mig_walk walk;       /* its framing, followed to its END */
	uint64_t inner_bytes;       /* of unknown inner data */
	bool have_qemu;
	struct qs_info qemu;
	struct qc compact;          /* re-sent pages, the compacted size */
	struct mig_err err;         /* the first failure, if any */
	bool failed;
	struct mig_signers signers; /* --signer: envelopes must be theirs */
};

static struct mig_src *top(struct info *in)
{
	return in->nlayers ? in->layers[in->nlayers - 1].src : in->base;
}

/* Consume the rest so every layer reaches its END and is verified. */
static int drain(struct info *in)
{
	const uint8_t *p;
	size_t n;
	int r;

	while ((r = mig_src_chunk(top(in), &p, &n, SIZE_MAX, &in->err)) > 0)
		in->inner_bytes += n;
	return r;
}

/* A layer that cannot be opened here: follow its framing to its END
 * (mig_layer_walk), so a cut one is reported as such; whole, it is still
 * not verified. */
static int walk_closed(struct info *in, const struct mig_detect *d)
{
	const struct mig_kind *k = mig_kind_by_id(d->kind);
	const char *why = !k ? "an unknown kind" :
		d->version != MIG_FORMAT_VERSION ? "an unknown format version" :
		"needs a key";

	in->closed_kind = d->kind ? d->kind : 255;
	int walked = mig_layer_walk(top(in), &in->walk, &in->err);
	in->inner_bytes = mig_src_offset(top(in));
	if (walked < 0)
		return mig_err_prefix(&in->err, "layer %zu: ", in->nlayers + 1);
	return mig_err_set(&in->err, EXIT_NOT_VERIFIED,
			   "layer %zu (%s): not verified (%s): its framing ends "
			   "with END after %llu frames, its content is not "
			   "checked", in->nlayers + 1, k ? k->name : "unknown",
			   why, (unsigned long long)in->walk.frames);
}

/* What is neither a layer nor a QEMU stream has no end to verify. */
static int inner_not_qemu(struct info *in, enum mig_input_type type)
{
	if (type == MIG_INPUT_EMPTY)
		return in->nlayers ?
			mig_err_set(&in->err, MIG_EXIT_DATA, "empty input: "
				    "layer %zu carries no data", in->nlayers) :
			mig_err_set(&in->err, MIG_EXIT_DATA, "empty input");
	if (drain(in) < 0)
		return -1;
	if (in->nlayers)
		return 0; /* the layers' END verified where it ends */
	return mig_err_set(&in->err, MIG_EXIT_DATA, "not a mig layer or a QEMU "
			   "migration stream: its end cannot be verified");
}

static int open_layer(struct info *in, const struct mig_detect *d,
		      const struct mig_filter *f)
{
	if (in->nlayers == MAX_LAYERS)
		return mig_err_set(&in->err, MIG_EXIT_DATA,
				   "more than %d layers", MAX_LAYERS);
	struct layer *l = &in->layers[in->nlayers];
	l->f = f;
	l->kind = d->kind;
	if (!(l->st = f->create()))
		return mig_err_set(&in->err, MIG_EXIT_SYS, "out of memory");
	if (d->kind == MIG_KIND_ENVELOPE && in->signers.n)
		mig_envelope_trust(l->st, &in->signers);
	if (!(l->src = mig_src_layer(top(in), f, l->st, mig_cpus(), &in->err))) {
		f->destroy(l->st);
		return -1;
	}
	in->nlayers++;
	if (mig_layer_open(l->src, &in->err) < 0)
		return mig_err_prefix(&in->err, "layer %zu: ", in->nlayers);
	return 0;
}

static bool has_envelope(const struct info *in)
{
	for (size_t i = 0; i < in->nlayers; i++)
		if (in->layers[i].kind == MIG_KIND_ENVELOPE)
			return true;
	return false;
}

/* libvirt's header and domain XML, read when the input starts with them. */
static int libvirt_header(struct info *in)
{
	const uint8_t *p;
	size_t got;
	char lerr[512];

	if (mig_src_peek(in->base, LV_MAGIC_LEN, &p, &got, &in->err) < 0)
		return -1;
	if (got < LV_MAGIC_LEN || !lv_is_image(p, got))
		return 0;
	struct mig_src_pull pl = { in->base, &in->err, false };
	in->has_libvirt = true;
	if (lv_read(mig_src_pull_read, &pl, &in->lv, lerr, sizeof lerr) < 0)
		return pl.failed ? -1 : mig_err_set(&in->err, MIG_EXIT_DATA, "%s",
						    lerr);
	return 0;
}

/* After libvirt's header of a compressed image: migkit's layers (the
 * hook's output) are read on; another program's output is not verified. */
static int libvirt_payload(struct info *in, const struct mig_detect *d)
{
	const char *prog = lv_format_name(in->lv.format);

	if (!in->has_libvirt || in->lv.format == LV_FORMAT_RAW ||
	    d->type == MIG_INPUT_LAYER || d->type == MIG_INPUT_QEMU)
		return 0;
	if (drain(in) < 0)
		return -1;
	return mig_err_set(&in->err, EXIT_NOT_VERIFIED, "libvirt image of "
			   "format %s: its %llu bytes after the header are the "
			   "output of the program '%s', not migkit's: not "
			   "verified", prog,
			   (unsigned long long)in->inner_bytes, prog);
}

/* libvirt writes LibvirtQemudSave once the rest is written. */
static int libvirt_finished(struct info *in)
{
	if (!in->has_libvirt || in->lv.complete)
		return 0;
	return mig_err_set(&in->err, MIG_EXIT_DATA, "incomplete: the libvirt "
			   "header says " LV_MAGIC_PART ": libvirt had not "
			   "finished this image (it writes " LV_MAGIC_SAVE
			   " last)");
}

static int scan_stream(struct info *in);

static int scan(struct info *in)
{
	if (libvirt_header(in) < 0 || scan_stream(in) < 0)
		return -1;
	return libvirt_finished(in);
}

static int scan_stream(struct info *in)
{
	struct mig_detect d;

	if (mig_detect(top(in), &d, &in->err) < 0)
		return -1;
	if (libvirt_payload(in, &d) < 0)
		return -1;
	for (;;) {
		if (mig_detect(top(in), &d, &in->err) < 0)
			return -1;
		in->inner = d.type;
		if (d.type != MIG_INPUT_LAYER)
			break;
		if (d.headlen < 6)
			return mig_err_set(&in->err, MIG_EXIT_DATA,
					   "truncated: the stream ends inside "
					   "the layer header");
		const struct mig_filter *f = mig_filter_by_kind(d.kind);
		if (!f || f->needs_key || d.version != MIG_FORMAT_VERSION)
			return walk_closed(in, &d);
		if (open_layer(in, &d, f) < 0)
			return -1;
	}
	/* --signer: as mig-recv, a stream without an envelope is unsigned */
	if (in->signers.n && !has_envelope(in))
		return mig_err_set(&in->err, MIG_EXIT_DATA, "the stream is not "
				   "signed (it has no envelope), and a trusted "
				   "signer is required (--signer)");
	if (d.type != MIG_INPUT_QEMU)
		return inner_not_qemu(in, d.type);

	/* qemu-stream pulls from the innermost layer; layer errors are kept */
	struct mig_src_pull p = { top(in), &in->err, false };
	char qerr[512];
	in->have_qemu = true;
	if (qc_init(&in->compact, -1, -1) < 0)
		return mig_err_set(&in->err, MIG_EXIT_SYS, "out of memory");
	/* a delta layer carries only the pages that changed: maybe none; its
	 * XBZRLE records are its own, against its base, not QEMU's */
	bool delta = in->nlayers && in->layers[in->nlayers - 1].kind == MIG_KIND_DELTA;
	unsigned flags = delta ? QS_ALLOW_NO_PAGES : 0;
	if (delta)
		snprintf(in->compact.not_compactable, sizeof in->compact.not_compactable,
			 "a delta: mig-compact takes a whole checkpoint "
			 "(mig-delta -d rebuilds one)");
	if (qs_scan_hooks(mig_src_pull_read, &p, flags, &in->compact.hooks,
			  &in->qemu, qerr, sizeof qerr) < 0) {
		if (in->compact.code) /* the page index could not be made */
			mig_err_set(&in->err, in->compact.code, "QEMU stream: %s",
				    in->compact.why);
		else if (!p.failed)
			mig_err_set(&in->err, MIG_EXIT_DATA, "QEMU stream: %s",
				    qerr);
		return -1;
	}
	/* the QEMU stream ends at its trailer; its layers must end there too */
	return drain(in) < 0 ? -1 : 0;
}

/* ---- Text ----------------------------------------------------------------- */

static const char *human(uint64_t n, char *buf)
{
	mig_format_bytes(n, buf, 32);
	return buf;
}

/* A signed envelope's signer: whether it is one the user trusts is only
 * known with --signer; a signature that failed is in.err instead. */
static bool signature(const struct layer *l, struct mig_seal_sig *sig)
{
	if (l->kind != MIG_KIND_ENVELOPE)
		return false;
	mig_envelope_signature(l->st, sig);
	return sig->is_signed;
}

/* META as its writer put it, escaped (mig_escape), and labelled. */
static void print_meta(const struct layer *l)
{
	const char *label = mig_meta_label(l->f, l->st);

	for (size_t m = 0; m < mig_layer_meta_count(l->src); m++) {
		const struct mig_meta *mm = mig_layer_meta(l->src, m);
		char *v = mig_escape(mm->value, mm->value_len);
		printf("  meta (%s) %s=%s\n", label, mm->key,
		       v ? v : "(out of memory)");
		free(v);
	}
}

/* Layer i + 1: kind, parameters, signature, META, frames and sizes. */
static void print_layer_text(const struct info *in, size_t i)
{
	const struct layer *l = &in->layers[i];
	struct mig_layer_totals t;
	struct mig_seal_sig sig;
	size_t plen;
	const uint8_t *p = mig_layer_params(l->src, &plen);
	char params[256] = "", b1[32], b2[32];

	if (l->f->describe)
		l->f->describe(p, plen, params, sizeof params);
	mig_layer_totals(l->src, &t);
	printf("layer %zu: %s (%s)\n", i + 1, l->f->name, params);
	if (signature(l, &sig) && !in->failed)
		printf("  signature: good, signer %s %s\n", sig.signer_id,
		       sig.trusted ? "trusted (--signer)"
				   : "not checked against a trusted key "
				     "(give --signer)");
	print_meta(l);
	printf("  frames %llu (%llu data), inner %s, encoded %s",
	       (unsigned long long)t.frames, (unsigned long long)t.data_frames,
	       human(t.bytes, b1), human(t.encoded, b2));
	if (t.bytes)
		printf(", ratio %.3f", (double)t.encoded / (double)t.bytes);
	printf("\n");
}

/* What is inside the opened layers when it is not a QEMU stream: a layer
 * that cannot be opened here, or other data, or nothing. */
static void print_inner_text(const struct info *in)
{
	if (in->closed_kind) {
		const struct mig_kind *k = mig_kind_by_id(in->closed_kind);
		printf("layer %zu: %s%s, cannot be opened here (%llu bytes)\n",
		       in->nlayers + 1, k ? k->name : "unknown kind",
		       k ? "" : " or format version",
		       (unsigned long long)in->inner_bytes);
		if (in->err.code == EXIT_NOT_VERIFIED)
			printf("  frames %llu and END, content not verified\n",
			       (unsigned long long)in->walk.frames);
	} else if (in->inner == MIG_INPUT_UNKNOWN)
		printf("inner data: %llu bytes, not a QEMU stream\n",
		       (unsigned long long)in->inner_bytes);
	else if (in->inner == MIG_INPUT_EMPTY)
		printf("inner data: empty\n");
}

static void print_qemu_text(const struct qs_info *q)
{
	char b1[32], b2[32];

	printf("QEMU migration stream, version %u\n", q->version);
	if (q->machine[0])
		printf("  machine %s\n", q->machine);
	if (q->capabilities[0])
		printf("  capabilities %s\n", q->capabilities);
	if (q->nblocks) {
		printf("  RAM %s in %zu blocks, page size %llu\n",
		       human(q->ram_total, b1), q->nblocks,
		       (unsigned long long)q->page_size);
		for (size_t i = 0; i < q->nblocks; i++) {
			printf("    %-24s %10s  %llu pages, %llu zero",
			       q->blocks[i].id, human(q->blocks[i].size, b1),
			       (unsigned long long)q->blocks[i].normal_pages,
			       (unsigned long long)q->blocks[i].zero_pages);
			if (q->blocks[i].other_pages) /* XBZRLE: a delta's */
				printf(", %llu XBZRLE or compressed",
				       (unsigned long long)q->blocks[i].other_pages);
			printf("\n");
		}
	}
	printf("  sections: %llu start, %llu part, %llu end, %llu full "
	       "(before device state)\n",
	       (unsigned long long)q->sections_start,
	       (unsigned long long)q->sections_part,
	       (unsigned long long)q->sections_end,
	       (unsigned long long)q->sections_full);
	printf("  ram sections %s, device state %s\n", human(q->ram_bytes, b1),
	       human(q->device_bytes, b2));
	if (q->ndevices) {
		printf("  devices (%zu):", q->ndevices);
		for (size_t i = 0; i < q->ndevices; i++)
			printf(" %s", q->devices[i].name);
		printf("\n");
	}
	printf("  end: %s, %s\n", q->has_eof ? "EOF marker" : "no EOF marker",
	       q->has_vmdesc ? "device description" : "no device description");
}

/* What mig-compact would make of a complete stream. */
static void print_compact_text(const struct info *in)
{
	const struct qc *c = &in->compact;
	uint64_t out = qc_output_bytes(c, &in->qemu), bytes = in->qemu.bytes;
	char b1[32];

	if (c->no_index) {
		printf("  pages sent more than once: not counted: %s\n",
		       c->not_compactable);
		return;
	}
	printf("  pages sent more than once: %llu (%llu records re-sent)\n",
	       (unsigned long long)qc_pages_sent_again(c),
	       (unsigned long long)c->resent);
	if (c->not_compactable[0])
		printf("  compaction: not possible: %s\n", c->not_compactable);
	else
		printf("  compaction: %s, saves %llu bytes (%.1f%%)\n",
		       human(out, b1), (unsigned long long)(bytes - out),
		       bytes ? 100.0 * (double)(bytes - out) / (double)bytes : 0.0);
}

/* libvirt's header, and the domain XML escaped as META is. */
static void print_libvirt_text(const struct lv_image *lv)
{
	char *xml = lv->xml ? mig_escape(lv->xml, lv->xml_len) : NULL;

	printf("libvirt save image: %s (%s), version %u%s\n",
	       lv->complete ? LV_MAGIC_SAVE : LV_MAGIC_PART,
	       lv->complete ? "complete" : "not finished by libvirt",
	       lv->version, lv->swapped ? ", other byte order" : "");
	printf("  running %s, format %s (%u), XML %zu bytes, cookie %zu bytes, "
	       "stream at offset %llu\n", lv->was_running ? "yes" : "no",
	       lv_format_name(lv->format), lv->format, lv->xml_len,
	       lv->cookie_len, (unsigned long long)lv->stream_offset);
	if (lv->xml)
		printf("  xml=%s\n", xml ? xml : "(out of memory)");
	free(xml);
}

static void print_text(const struct info *in)
{
	printf("%s: %llu bytes\n", in->name,
	       (unsigned long long)mig_src_offset(in->base));
	if (in->has_libvirt)
		print_libvirt_text(&in->lv);
	for (size_t i = 0; i < in->nlayers; i++)
		print_layer_text(in, i);
	if (!in->has_libvirt || in->lv.xml) /* else its header failed */
		print_inner_text(in);
	if (in->have_qemu)
		print_qemu_text(&in->qemu);
	if (in->have_qemu && !in->failed)
		print_compact_text(in);
}

/* ---- JSON ----------------------------------------------------------------- */

/* Re-sent pages and the compacted size, for a complete stream. */
static json_t *compact_json(const struct info *in)
{
	const struct qc *c = &in->compact;
	uint64_t out = qc_output_bytes(c, &in->qemu);
	bool can = !c->not_compactable[0];

	if (c->no_index)
		return json_pack("{s:n, s:n, s:n, s:n, s:s}", "pages_sent_again",
				 "records_resent", "compacted_bytes",
				 "compaction_saves", "not_compactable",
				 c->not_compactable);

	return json_pack("{s:I, s:I, s:o, s:o, s:o}",
			 "pages_sent_again", (json_int_t)qc_pages_sent_again(c),
			 "records_resent", (json_int_t)c->resent,
			 "compacted_bytes", can ? json_integer((json_int_t)out) : json_null(),
			 "compaction_saves", can ? json_integer((json_int_t)(in->qemu.bytes - out)) : json_null(),
			 "not_compactable", can ? json_null() : json_string(c->not_compactable));
}

static json_t *qemu_json(const struct qs_info *q)
{
	json_t *blocks = json_array(), *devices = json_array();

	for (size_t i = 0; i < q->nblocks; i++)
		json_array_append_new(blocks, json_pack(
			"{s:s, s:I, s:I, s:I, s:I}", "id", q->blocks[i].id,
			"size", (json_int_t)q->blocks[i].size,
			"pages", (json_int_t)q->blocks[i].normal_pages,
			"zero_pages", (json_int_t)q->blocks[i].zero_pages,
			"other_pages", (json_int_t)q->blocks[i].other_pages));
	for (size_t i = 0; i < q->ndevices; i++)
		json_array_append_new(devices, json_pack(
			"{s:s, s:I, s:I}", "name", q->devices[i].name,
			"instance", (json_int_t)q->devices[i].instance,
			"version", (json_int_t)q->devices[i].version));
	return json_pack("{s:I, s:s, s:s, s:I, s:I, s:o, s:{s:I, s:I, s:I, s:I},"
			 " s:I, s:I, s:I, s:b, s:b, s:o}",
			 "version", (json_int_t)q->version,
			 "machine", q->machine,
			 "capabilities", q->capabilities,
			 "ram_total", (json_int_t)q->ram_total,
			 "page_size", (json_int_t)q->page_size,
			 "ram_blocks", blocks,
			 "sections", "start", (json_int_t)q->sections_start,
			 "part", (json_int_t)q->sections_part,
			 "end", (json_int_t)q->sections_end,
			 "full", (json_int_t)q->sections_full,
			 "bytes", (json_int_t)q->bytes,
			 "ram_bytes", (json_int_t)q->ram_bytes,
			 "device_bytes", (json_int_t)q->device_bytes,
			 "eof", q->has_eof, "vmdesc", q->has_vmdesc,
			 "devices", devices);
}

/* A META value as a JSON string: jansson escapes control characters, but
 * takes only UTF-8; other bytes are given escaped as in the text output,
 * rather than the value dropped. */
static json_t *meta_json(const struct mig_meta *m)
{
	json_t *j = json_stringn(m->value, m->value_len);
	char *v;

	if (j || !(v = mig_escape(m->value, m->value_len)))
		return j;
	j = json_string(v);
	free(v);
	return j;
}

static json_t *layer_json(const struct info *in, const struct layer *l)
{
	struct mig_layer_totals t;
	struct mig_seal_sig sig = { 0 };
	size_t plen;
	const uint8_t *p = mig_layer_params(l->src, &plen);
	char params[256] = "";
	json_t *meta = json_object(), *signer = json_null();
	bool signed_trusted = !strcmp(mig_meta_label(l->f, l->st), "signed");

	if (l->f->describe)
		l->f->describe(p, plen, params, sizeof params);
	mig_layer_totals(l->src, &t);
	for (size_t m = 0; m < mig_layer_meta_count(l->src); m++)
		json_object_set_new(meta, mig_layer_meta(l->src, m)->key,
				    meta_json(mig_layer_meta(l->src, m)));
	if (signature(l, &sig))
		signer = json_pack("{s:s, s:I, s:b, s:b}", "signer",
				   sig.signer_id, "created",
				   (json_int_t)sig.created, "trusted",
				   sig.trusted, "verified", !in->failed);
	return json_pack(
		"{s:s, s:i, s:s, s:o, s:o, s:b, s:I, s:I, s:I, s:I}",
		"kind", l->f->name, "format_version", MIG_FORMAT_VERSION,
		"params", params, "meta", meta, "signature", signer,
		"meta_authenticated", signed_trusted,
		"frames", (json_int_t)t.frames,
		"data_frames", (json_int_t)t.data_frames,
		"inner_bytes", (json_int_t)t.bytes,
		"encoded_bytes", (json_int_t)t.encoded);
}

static json_t *libvirt_json(const struct info *in)
{
	const struct lv_image *lv = &in->lv;

	if (!in->has_libvirt)
		return json_null();
	return json_pack("{s:s, s:b, s:i, s:b, s:b, s:s, s:i, s:s?, s:s?, s:I}",
		"magic", lv->complete ? LV_MAGIC_SAVE : LV_MAGIC_PART,
		"complete", lv->complete, "version", (int)lv->version,
		"swapped", lv->swapped, "running", lv->was_running != 0,
		"format", lv_format_name(lv->format), "format_code",
		(int)lv->format, "xml", lv->xml, "cookie", lv->cookie,
		"stream_offset", (json_int_t)lv->stream_offset);
}

static void print_json(const struct info *in)
{
	static const char *inner_names[] = { "empty", "qemu", "layer", "unknown" };
	json_t *layers = json_array();

	for (size_t i = 0; i < in->nlayers; i++)
		json_array_append_new(layers, layer_json(in, &in->layers[i]));
	if (in->closed_kind) {
		const struct mig_kind *k = mig_kind_by_id(in->closed_kind);
		json_array_append_new(layers, json_pack(
			"{s:s, s:b}", "kind", k ? k->name : "unknown",
			"opened", 0));
	}
	json_t *root = json_pack(
		"{s:s, s:I, s:o, s:o, s:s, s:o, s:o, s:b, s:o}", "file", in->name,
		"bytes", (json_int_t)mig_src_offset(in->base),
		"libvirt", libvirt_json(in), "layers", layers,
		"inner", in->closed_kind ? "closed" : inner_names[in->inner],
		"qemu", in->have_qemu ? qemu_json(&in->qemu) : json_null(),
		"compaction", in->have_qemu && !in->failed ? compact_json(in) :
							    json_null(),
		"complete", !in->failed,
		"error", in->failed ? json_string(in->err.msg) : json_null());
	json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("\n");
	json_decref(root);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mig-info [--json] [-q] [--signer PUB]... [FILE]\n"
		"Describe a mig or raw QEMU migration stream read from FILE or "
		"standard input:\nits layers, META, sizes, and the QEMU stream "
		"inside. Reading it all, it also\nverifies it: exit status 0 "
		"only for a complete, intact stream.\n\n"
		"  -j, --json     machine-readable output\n"
		"  -q, --quiet    no description, only the exit status and errors\n"
		"      --signer PUB  envelopes must be signed by this signer "
		"(repeatable)\n"
		"  -h, --help     this help\n"
		"  -V, --version  version\n\n"
		"Exit status: 0 complete and intact, 1 bad, truncated or "
		"empty, 2 usage,\n3 I/O error, 5 whole to its END but not "
		"verified (a layer needs a key).\n");
}

/* What the command line asks for besides the signers */
struct request {
	const char *file; /* NULL: stdin */
	bool json, quiet;
};

/* MIG_GO_ON, or the exit status to leave with. */
static int parse_args(struct info *in, struct request *rq, int argc,
		      char **argv)
{
	enum { OPT_SIGNER = 256 };
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "signer", required_argument, NULL, OPT_SIGNER },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0; /* our own messages, in one write */
	while ((c = getopt_long(argc, argv, "jqhV", lo, NULL)) != -1) {
		switch (c) {
		case 'j': rq->json = true; break;
		case 'q': rq->quiet = true; break;
		case OPT_SIGNER:
			if (mig_signers_add(&in->signers, optarg, &in->err) < 0) {
				mig_warn("--signer: %s", in->err.msg);
				return MIG_EXIT_USAGE;
			}
			break;
		case 'h': usage(stdout); return mig_stdout_finish();
		case 'V': return mig_print_version();
		default: return mig_unknown_option(argv);
		}
	}
	if (argc - optind > 1) {
		mig_warn("one input at most");
		return MIG_EXIT_USAGE;
	}
	if (argc - optind == 1 && strcmp(argv[optind], "-") != 0)
		rq->file = in->name = argv[optind];
	return MIG_GO_ON;
}

/* FILE, or stdin, as in->base; *fd is the descriptor to close. Returns
 * MIG_GO_ON, or an exit status after a message. */
static int open_input(struct info *in, const char *file, int *fd)
{
	if (file && (*fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
		mig_warn("%s: %s", in->name, strerror(errno));
		return MIG_EXIT_IO; /* missing or not readable alike */
	}
	mig_pipe_grow(*fd);
	if (!(in->base = mig_src_fd(*fd, in->name))) {
		mig_warn("out of memory");
		return MIG_EXIT_SYS;
	}
	return MIG_GO_ON;
}

/* Read and verify the stream, describe it, say why it failed if it did.
 * Returns the exit status. */
static int describe(struct info *in, const struct request *rq)
{
	int rc;

	in->failed = scan(in) < 0;
	if (!rq->quiet)
		rq->json ? print_json(in) : print_text(in);
	/* a description that could not be written is an I/O error; the
	 * stream's own failure, found first, is the status that wins */
	rc = rq->quiet ? MIG_EXIT_OK : mig_stdout_finish();
	if (in->failed) {
		mig_warn("%s: %s", in->name, in->err.msg);
		rc = in->err.code ? in->err.code : MIG_EXIT_DATA;
	}
	return rc;
}

static void free_info(struct info *in)
{
	lv_image_free(&in->lv);
	qs_info_free(&in->qemu);
	qc_free(&in->compact);
	for (size_t i = in->nlayers; i-- > 0;) {
		mig_src_free(in->layers[i].src);
		in->layers[i].f->destroy(in->layers[i].st);
	}
	mig_src_free(in->base);
}

int main(int argc, char **argv)
{
	struct info in = { .name = "stdin" };
	struct request rq = { 0 };
	int fd = 0, rc;

	mig_progname = "mig-info";
	if (mig_stdfds_ensure(NULL) < 0) /* before anything is opened */
		return MIG_EXIT_SYS;
	rc = parse_args(&in, &rq, argc, argv);
	if (rc == MIG_GO_ON && !rq.quiet && mig_stdout_closed()) {
		mig_warn("stdout: closed"); /* the description would be lost */
		rc = MIG_EXIT_IO;
	}
	if (rc == MIG_GO_ON)
		rc = open_input(&in, rq.file, &fd);
	if (rc == MIG_GO_ON)
		rc = describe(&in, &rq);
	free_info(&in);
	if (fd > 0)
		close(fd);
	return rc;
}
