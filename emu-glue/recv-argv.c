/*
 * recv-argv.c - the emulator's command line: growing argument vectors,
 * QEMU's options told apart, the destination's command line made from
 * the source's (--from-stream), and printed for the shell (--dry-run, -v).
 * Apart because it is only string work: no process, no stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mig.h"
#include "mig-recv.h"

void migrecv_av_push(struct argv *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 32;
		a->v = realloc(a->v, a->cap * sizeof *a->v);
		if (!a->v) {
			mig_warn("out of memory");
			exit(MIG_EXIT_SYS);
		}
	}
	a->v[a->n++] = strdup(s);
	a->v[a->n] = NULL;
}

void migrecv_av_free(struct argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

/* QEMU options that take no argument (the others take one). */
static bool qemu_flag(const char *opt)
{
	static const char *const flags[] = {
		"S", "s", "nodefaults", "no-user-config", "nodefconfig",
		"daemonize", "enable-kvm", "no-reboot", "no-shutdown",
		"nographic", "snapshot", "no-hpet", "no-acpi", "full-screen",
		"only-migratable", "no-fd-bootchk", "win2k-hack", "usb",
		"preconfig", "no-quit", "alt-grab", "ctrl-grab", "no-frame",
		"enable-fips", "version", "h", "help", "semihosting",
		"enable-sync-profile", "old-param", "mem-prealloc", "no-kvm",
		"xen-attach", "curses", NULL,
	};
	for (const char *const *f = flags; *f; f++)
		if (!strcmp(opt, *f))
			return true;
	return false;
}

/* "-opt" or "--opt" -> "opt"; NULL for a word that is not an option. */
const char *migrecv_opt_name(const char *w)
{
	if (w[0] != '-' || !w[1])
		return NULL;
	return w[1] == '-' ? w + 2 : w + 1;
}

/* The value of KEY=... in a -object/-device/... argument, into out ("" if
 * none; ",," is a comma inside a value). */
static void arg_value(const char *arg, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);
	const char *p = arg;

	out[0] = '\0';
	while (*p) {
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			size_t k = 0;
			for (p += kl + 1; *p && k < len - 1; p++) {
				if (*p == ',') {
					if (p[1] != ',')
						break;
					p++;
				}
				out[k++] = *p;
			}
			out[k] = '\0';
			return;
		}
		/* to the next option */
		while (*p && !(*p == ',' && p[1] != ',')) {
			if (*p == ',')
				p++;
			p++;
		}
		if (*p == ',')
			p++;
	}
}

/* The id=... of such an argument ("" if none); a static buffer. */
static const char *arg_id(const char *arg)
{
	static char id[256];

	arg_value(arg, "id", id, sizeof id);
	return id;
}

static bool keyed_option(const char *o)
{
	return !strcmp(o, "object") || !strcmp(o, "device") ||
	       !strcmp(o, "chardev") || !strcmp(o, "netdev") ||
	       !strcmp(o, "drive") || !strcmp(o, "blockdev");
}

/* One option of a command line: name and argument (NULL for a flag, or
 * for a word that is not an option: then name is NULL and arg the word). */
struct opt {
	const char *name, *word, *arg;
};

static size_t split_opts(char **v, size_t n, struct opt *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *o = migrecv_opt_name(v[i]);
		out[k].word = v[i];
		out[k].name = o;
		out[k].arg = NULL;
		if (o && !qemu_flag(o) && i + 1 < n)
			out[k].arg = v[++i];
		k++;
	}
	return k;
}

/* Source options never carried over: they bind the source's own monitor,
 * incoming channel, pid file, or stop it at start. */
static bool dropped(const char *o)
{
	static const char *const drop[] = {
		"incoming", "qmp", "qmp-pretty", "monitor", "daemonize",
		"pidfile", "S", "loadvm", "mem-path", "mem-prealloc", NULL,
	};
	for (const char *const *d = drop; *d; d++)
		if (!strcmp(o, *d))
			return true;
	return false;
}

/*
 * The destination's command line from the source's (META qemu.argv) and
 * the user's overrides. Rules (mig-recv(1)):
 *  - dropped: -incoming, -qmp, -qmp-pretty, -monitor, -daemonize,
 *    -pidfile, -S, -loadvm, -mem-path, -mem-prealloc;
 *  - -object memory-backend-file,id=X,size=S,... becomes
 *    memory-backend-ram,id=X,size=S (same id, anonymous RAM);
 *  - an override of -object/-device/-chardev/-netdev/-drive/-blockdev
 *    with id=X replaces the source's option of that kind and id; without
 *    an id it is added;
 *  - any other override replaces every source option of that name;
 *  - the overrides come last.
 */
int migrecv_from_stream(json_t *src, char **over, size_t nover,
		       struct argv *out)
{
	size_t n = json_array_size(src);
	char **sv = calloc(n + 1, sizeof *sv);
	struct opt *so = calloc(n + 1, sizeof *so), *oo = calloc(nover + 1, sizeof *oo);

	if (!sv || !so || !oo) {
		mig_warn("out of memory");
		exit(MIG_EXIT_SYS);
	}
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(src, i));
		if (!s) {
			mig_warn("stdin: META qemu.argv is not an array of strings");
			goto out;
		}
		sv[i] = (char *)s;
	}
	if (n == 0) {
		mig_warn("stdin: META qemu.argv is empty");
		goto out;
	}
	/* the emulator: the user's, else the source's (by name if its path
	 * does not exist here) */
	size_t first = 0;
	if (nover && over[0][0] != '-') {
		migrecv_av_push(out, over[0]);
		first = 1;
	} else if (access(sv[0], X_OK) == 0) {
		migrecv_av_push(out, sv[0]);
	} else {
		const char *b = strrchr(sv[0], '/');
		migrecv_av_push(out, b ? b + 1 : sv[0]);
	}
	size_t ns = split_opts(sv + 1, n - 1, so);
	size_t no = split_opts(over + first, nover - first, oo);

	for (size_t i = 0; i < ns; i++) {
		const struct opt *s = &so[i];
		bool keep = true;
		if (s->name && dropped(s->name))
			keep = false;
		for (size_t j = 0; keep && j < no; j++) {
			const struct opt *u = &oo[j];
			if (!s->name || !u->name || strcmp(s->name, u->name))
				continue;
			if (keyed_option(u->name)) {
				char sid[256];
				snprintf(sid, sizeof sid, "%s", s->arg ? arg_id(s->arg) : "");
				const char *uid = u->arg ? arg_id(u->arg) : "";
				if (*uid && !strcmp(sid, uid))
					keep = false;
			} else {
				keep = false;
			}
		}
		if (!keep)
			continue;
		if (s->name && !strcmp(s->name, "object") && s->arg &&
		    !strncmp(s->arg, "memory-backend-file,", 20)) {
			char size[64], nb[512];
			arg_value(s->arg, "size", size, sizeof size);
			snprintf(nb, sizeof nb, "memory-backend-ram,id=%s%s%s",
				 arg_id(s->arg), *size ? ",size=" : "", size);
			migrecv_av_push(out, s->word);
			migrecv_av_push(out, nb);
			continue;
		}
		migrecv_av_push(out, s->word);
		if (s->arg)
			migrecv_av_push(out, s->arg);
	}
	for (size_t j = 0; j < no; j++) {
		if (oo[j].name && !strcmp(oo[j].name, "incoming"))
			continue; /* "-incoming -": implied */
		migrecv_av_push(out, oo[j].word);
		if (oo[j].arg)
			migrecv_av_push(out, oo[j].arg);
	}
	rc = 0;
out:
	free(sv);
	free(so);
	free(oo);
	return rc;
}

void migrecv_print_quoted(FILE *f, char **v)
{
	for (size_t i = 0; v[i]; i++) {
		const char *s = v[i];
		bool plain = *s != '\0';
		for (const char *p = s; *p; p++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789-_=,./:+@%", *p))
				plain = false;
		fputs(i ? " " : "", f);
		if (plain) {
			fputs(s, f);
			continue;
		}
		fputc('\'', f);
		for (const char *p = s; *p; p++)
			if (*p == '\'')
				fputs("'\\''", f);
			else
				fputc(*p, f);
		fputc('\'', f);
	}
	fputc('\n', f);
}
