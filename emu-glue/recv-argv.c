/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * recv-argv.c - the emulator's command line: growing argument vectors,
 * QEMU's options told apart, the destination's command line made from
 * the source's (--from-stream), and printed for the shell (--dry-run, -v).
 * Apart because it is only string work: no process, no stream.
 *
 * With --from-stream the stream is hostile input: QEMU trusts a migration
 * stream for guest state only, and libvirt checks the XML it receives
 * against the destination's policy. So the emulator is the destination's
 * (pick_emulator) and the stream's options pass an allow-list of what
 * describes the guest machine (opt_rules, judge); what names a host
 * resource or runs something is dropped unless the destination supplies
 * it or allows it by name (--allow).
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
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
		"xen-attach", "curses", "async-teardown", "singlestep",
		"portrait", "xen-domid-restrict", "audio-help", NULL,
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

/* S, LEN bytes of it, with control characters written \xNN: what the
 * stream says is hostile input, and a terminal obeys escape sequences. */
char *migrecv_shown(const char *s, size_t len)
{
	char *out = malloc(4 * len + 1), *q = out;

	if (!out) {
		mig_warn("out of memory");
		exit(MIG_EXIT_SYS);
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			q += sprintf(q, "\\x%02x", c);
		else
			*q++ = (char)c;
	}
	*q = '\0';
	return out;
}

static char *shown(const char *s)
{
	return migrecv_shown(s, strlen(s));
}

/* ---- The emulator: the destination's choice, never the stream's ---- */

#define RECV_CONF "/etc/migkit/mig-recv.conf"

struct emulator {
	char *path;
	char *from; /* where the choice came from, for -v and --dry-run */
};

static void set_emulator(struct emulator *em, const char *path, const char *from)
{
	em->path = strdup(path);
	em->from = strdup(from);
	if (!em->path || !em->from) {
		mig_warn("out of memory");
		exit(MIG_EXIT_SYS);
	}
}

/* S without the blanks around it (in place). */
static char *trimmed(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n && strchr(" \t\r\n", s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* The last "emulator=PATH" line of the configuration file PATH into em
 * (nothing if none, or no file). A file that exists but cannot be read is
 * an error: the destination's setting is not silently replaced. */
static int conf_emulator(const char *path, struct emulator *em)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, *value = NULL;
	size_t cap = 0;
	int err = 0;

	if (!f) {
		if (errno == ENOENT)
			return 0;
		mig_warn("%s: %s", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) >= 0) {
		char *l = trimmed(line);
		if (!strncmp(l, "emulator=", 9) && *trimmed(l + 9)) {
			free(value);
			value = strdup(trimmed(l + 9));
		}
	}
	if (ferror(f))
		err = errno ? errno : EIO;
	fclose(f);
	free(line);
	if (err)
		mig_warn("%s: %s", path, strerror(err));
	else if (value)
		set_emulator(em, value, path);
	free(value);
	return err ? -1 : 0;
}

/* qemu-system-ARCH for this host's architecture (uname -m, in QEMU's
 * names). */
static void default_emulator(struct emulator *em)
{
	static const char *const alias[][2] = {
		{ "i486", "i386" }, { "i586", "i386" }, { "i686", "i386" },
		{ "armv6l", "arm" }, { "armv7l", "arm" }, { "arm64", "aarch64" },
		{ "ppc64le", "ppc64" },
	};
	struct utsname u;
	const char *arch = "x86_64";
	char path[128], from[128];

	if (uname(&u) == 0)
		arch = u.machine;
	for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
		if (!strcmp(arch, alias[i][0]))
			arch = alias[i][1];
	snprintf(path, sizeof path, "qemu-system-%s", arch);
	snprintf(from, sizeof from, "the default on %s", u.machine);
	set_emulator(em, path, from);
}

/* The emulator, in this order: the overrides' first word (*used = 1),
 * --emulator, $MIG_EMULATOR, the configuration file, the default. */
static int pick_emulator(char **over, size_t nover,
			 const struct recv_policy *pol, struct emulator *em,
			 size_t *used)
{
	const char *env = getenv("MIG_EMULATOR"), *conf = getenv("MIG_RECV_CONF");

	*used = 0;
	if (nover && over[0][0] != '-') {
		*used = 1;
		set_emulator(em, over[0], "the command line");
	} else if (pol->emulator) {
		set_emulator(em, pol->emulator, "--emulator");
	} else if (env && *env) {
		set_emulator(em, env, "MIG_EMULATOR");
	} else {
		if (conf_emulator(conf && *conf ? conf : RECV_CONF, em) < 0)
			return -1;
		if (!em->path)
			default_emulator(em);
	}
	return 0;
}

/* ---- What the stream's options may choose (mig-recv(1)) ---- */

enum opt_class {
	GUEST,   /* describes the guest machine: kept, its properties checked */
	OWN,     /* the source's own monitor, pid file, start: always dropped */
	HOST,    /* names a host resource: file, socket, device, network */
	DISPLAY, /* opens a display on this host ("-display none" is kept) */
	RUNS,    /* runs or loads a program on this host */
	POLICY,  /* sets how the emulator runs on this host (user, sandbox) */
};

static const char *const class_why[] = {
	[HOST] = "names a host resource",
	[DISPLAY] = "opens a display on this host",
	[RUNS] = "runs or loads a program on this host",
	[POLICY] = "sets how the emulator runs on this host",
};

static const struct opt_rule {
	const char *name;
	enum opt_class cls;
} opt_rules[] = {
	{ "machine", GUEST }, { "M", GUEST }, { "cpu", GUEST },
	{ "smp", GUEST }, { "m", GUEST }, { "name", GUEST }, { "uuid", GUEST },
	{ "rtc", GUEST }, { "global", GUEST }, { "accel", GUEST },
	{ "enable-kvm", GUEST }, { "nodefaults", GUEST },
	{ "no-user-config", GUEST }, { "no-hpet", GUEST }, { "no-acpi", GUEST },
	{ "no-reboot", GUEST }, { "no-shutdown", GUEST }, { "boot", GUEST },
	{ "vga", GUEST }, { "numa", GUEST },
	{ "msg", GUEST }, { "device", GUEST }, { "object", GUEST },
	{ "fw_cfg", GUEST }, { "smbios", GUEST },

	{ "incoming", OWN }, { "qmp", OWN }, { "qmp-pretty", OWN },
	{ "monitor", OWN }, { "daemonize", OWN }, { "pidfile", OWN },
	{ "S", OWN }, { "loadvm", OWN }, { "mem-path", OWN },
	{ "mem-prealloc", OWN },

	{ "netdev", HOST }, { "nic", HOST }, { "net", HOST },
	{ "chardev", HOST }, { "serial", HOST }, { "parallel", HOST },
	{ "mon", HOST }, { "debugcon", HOST }, { "gdb", HOST }, { "s", HOST },
	{ "drive", HOST }, { "blockdev", HOST }, { "hda", HOST },
	{ "hdb", HOST }, { "hdc", HOST }, { "hdd", HOST }, { "cdrom", HOST },
	{ "fda", HOST }, { "fdb", HOST }, { "sd", HOST }, { "mtdblock", HOST },
	{ "pflash", HOST }, { "snapshot", HOST }, { "kernel", HOST },
	{ "initrd", HOST }, { "bios", HOST }, { "L", HOST }, { "dtb", HOST },
	{ "fsdev", HOST }, { "virtfs", HOST }, { "tpmdev", HOST },
	{ "audiodev", HOST }, { "audio", HOST }, { "add-fd", HOST },
	{ "readconfig", HOST }, { "acpitable", HOST }, { "D", HOST },
	{ "trace", HOST }, { "usbdevice", HOST }, { "iscsi", HOST },

	{ "display", DISPLAY }, { "vnc", DISPLAY }, { "spice", DISPLAY },
	{ "nographic", DISPLAY }, { "curses", DISPLAY }, { "sdl", DISPLAY },
	{ "full-screen", DISPLAY },

	{ "plugin", RUNS }, { "qtest", RUNS }, { "qtest-log", RUNS },
	{ "semihosting", RUNS }, { "semihosting-config", RUNS },

	{ "run-with", POLICY }, { "chroot", POLICY }, { "runas", POLICY },
	{ "sandbox", POLICY }, { "overcommit", POLICY },
};

static const struct opt_rule *opt_rule(const char *name)
{
	for (size_t i = 0; i < sizeof opt_rules / sizeof opt_rules[0]; i++)
		if (!strcmp(opt_rules[i].name, name))
			return &opt_rules[i];
	return NULL;
}

/* Properties that name host resources: files, sockets, descriptors, host
 * devices (those of QEMU 7.2's devices, `-device DRIVER,help`, and of its
 * machines and backends). */
static const char *const host_props[] = {
	"file", "filename", "path", "script", "downscript", "helper", "fd",
	"fds", "vhostfd", "vhostfds", "vhostdev", "host", "hostbus",
	"hostaddr", "hostport", "hostdevice", "host_ip", "sysfsdev",
	"romfile", "rootdir", "hidraw", "evdev", "ibdev", "pcap", "cdat",
	"sdrfile", "frudatafile", "cert1", "cert2", "cert3", "db", "dumpdtb",
	"dtb", "firmware", "kernel", "initrd", "bios", "splash", "socket",
	"sock", "mem-path", "logfile", "dir", NULL,
};

/* Devices that hand the guest a device of the host. */
static const char *const passthrough_drivers[] = {
	"vfio-*", "usb-host", "vhost-*", "*-passthru", "*-passthrough",
	"ivshmem*", "virtio-9p*", "scsi-generic", "scsi-block",
	"virtio-input-host*", "x-pci-proxy-dev", NULL,
};

/* The -object types a guest machine needs that name nothing of the host
 * (memory-backend-* are rewritten: see keep_option). */
static const char *const guest_objects[] = {
	"memory-backend-*", "iothread", "rng-builtin", "rng-random", NULL,
};

static bool matches(const char *const *globs, const char *s)
{
	for (; *globs; globs++)
		if (fnmatch(*globs, s, 0) == 0)
			return true;
	return false;
}

static bool allowed(const struct recv_policy *pol, const char *s, size_t len)
{
	for (size_t i = 0; i < pol->nallow; i++)
		if (strlen(pol->allow[i]) == len && !strncmp(pol->allow[i], s, len))
			return true;
	return false;
}

/* Why an option is dropped: the reason (what it quotes of the stream
 * escaped) and the name --allow takes to keep it (NULL: nothing can). */
struct verdict {
	char *why, *allow;
};

static bool drop(struct verdict *v, const char *allow, size_t alen,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Fills v; false, the option's fate. */
static bool drop(struct verdict *v, const char *allow, size_t alen,
		 const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&v->why, fmt, ap);
	va_end(ap);
	v->allow = allow ? strndup(allow, alen) : NULL;
	if (n < 0 || (allow && !v->allow)) {
		mig_warn("out of memory");
		exit(MIG_EXIT_SYS);
	}
	return false;
}

/* One element of an option's argument in QEMU's syntax (QemuOpts and
 * keyval alike): KEY=VALUE, a bare KEY (a flag), or a first VALUE whose
 * key is implied (the driver of -device, the type of -object...).
 * Elements end at a single comma; ",," is a comma inside a value. */
struct prop {
	const char *key, *val; /* key NULL: implied; val NULL: a flag */
	size_t klen, vlen;
};

static bool next_prop(const char **p, bool implied, struct prop *pr)
{
	const char *s = *p, *e;

	if (!*s)
		return false;
	pr->key = s;
	pr->klen = strcspn(s, "=,");
	pr->val = NULL;
	pr->vlen = 0;
	if (s[pr->klen] == '=' || implied) {
		if (s[pr->klen] == '=')
			s += pr->klen + 1;
		else
			pr->key = NULL, pr->klen = 0;
		for (e = s; *e && !(e[0] == ',' && e[1] != ','); e += e[0] == ',' ? 2 : 1)
			;
		pr->val = s;
		pr->vlen = (size_t)(e - s);
		s = e;
	} else {
		s += pr->klen;
	}
	if (*s == ',')
		s++;
	*p = s;
	return true;
}

static bool key_is(const struct prop *pr, const char *key)
{
	return pr->key && pr->klen == strlen(key) && !strncmp(pr->key, key, pr->klen);
}

/* A value with its ",," made ","; freed by the caller. */
static char *unescaped(const char *v, size_t len)
{
	char *out = malloc(len + 1), *q = out;

	if (!out) {
		mig_warn("out of memory");
		exit(MIG_EXIT_SYS);
	}
	for (size_t i = 0; i < len; i++) {
		*q++ = v[i];
		if (v[i] == ',' && i + 1 < len && v[i + 1] == ',')
			i++;
	}
	*q = '\0';
	return out;
}

/* A property name K (LEN bytes; each part of a dotted keyval name) that
 * names a host resource, unless allowed. */
static bool bad_key(const char *k, size_t len, const struct recv_policy *pol,
		    struct verdict *v)
{
	for (const char *c = k, *end = k + len; c < end;) {
		const char *dot = memchr(c, '.', (size_t)(end - c));
		size_t n = (size_t)((dot ? dot : end) - c);
		for (const char *const *h = host_props; *h; h++) {
			if (strlen(*h) != n || strncmp(*h, c, n) || allowed(pol, c, n))
				continue;
			char *what = migrecv_shown(c, n);
			drop(v, c, n, "property %s names a host resource", what);
			free(what);
			return true;
		}
		c += n + 1;
	}
	return false;
}

/* The driver of -device or -global, the type of -object: a host
 * passthrough device, or an object that is not the guest's. */
static bool bad_type(const char *name, const struct prop *pr,
		     const struct recv_policy *pol, struct verdict *v)
{
	char *t = unescaped(pr->val, pr->vlen), *what = shown(t);
	bool object = !strcmp(name, "object"), bad = false;

	if (allowed(pol, t, strlen(t)))
		;
	else if (!object && matches(passthrough_drivers, t))
		bad = !drop(v, t, strlen(t), "%s is a host passthrough device", what);
	else if (object && !matches(guest_objects, t))
		bad = !drop(v, t, strlen(t), "object type %s is not on the allow-list", what);
	free(what);
	free(t);
	return bad;
}

/* Options whose first bare word is a flag, not the value of an implied
 * key (QEMU parses them without one). */
static bool no_implied_key(const char *name)
{
	static const char *const none[] = {
		"rtc", "global", "overcommit", "msg", "smbios", NULL,
	};
	for (const char *const *n = none; *n; n++)
		if (!strcmp(*n, name))
			return true;
	return false;
}

/* A property of the argument of -NAME that makes it dropped: a host
 * resource named, a passthrough driver, an object type not allowed. For
 * -global, DRIVER.PROPERTY=VALUE or driver=,property=. */
static bool bad_props(const char *name, const char *arg,
		      const struct recv_policy *pol, struct verdict *v)
{
	bool global = !strcmp(name, "global"), implied = !no_implied_key(name);
	const char *typekey = !strcmp(name, "object") ? "qom-type" :
		(global || !strcmp(name, "device")) ? "driver" : NULL;
	size_t dl = strcspn(arg, ".="), pl;
	struct prop pr;

	if (global && arg[dl] == '.' && (pl = strcspn(arg + dl + 1, "=")) &&
	    arg[dl + 1 + pl] == '=' && dl <= 63 && pl <= 63) {
		struct prop drv = { .val = arg, .vlen = dl };
		return bad_type(name, &drv, pol, v) ||
		       bad_key(arg + dl + 1, pl, pol, v);
	}
	for (const char *p = arg; next_prop(&p, implied, &pr); implied = false) {
		if (typekey && pr.val && (!pr.key || key_is(&pr, typekey)) &&
		    bad_type(name, &pr, pol, v))
			return true;
		if (global && pr.val && key_is(&pr, "property") &&
		    bad_key(pr.val, pr.vlen, pol, v))
			return true;
		if (pr.key && bad_key(pr.key, pr.klen, pol, v))
			return true;
	}
	return false;
}

/* Whether the stream's option S may reach the emulator; if not, why (v).
 * The source's own options (class OWN) are not asked about. */
static bool judge(const struct opt *s, const struct recv_policy *pol,
		  struct verdict *v)
{
	const struct opt_rule *r;

	if (!s->name)
		return drop(v, NULL, 0, "is not an option (QEMU would open it "
			    "as a disk image)");
	if (!qemu_flag(s->name) && !s->arg)
		return drop(v, NULL, 0, "has no argument");
	/* an option QEMU takes without an argument, missing from our list,
	 * would have the next option pass unjudged as its argument */
	if (s->arg && migrecv_opt_name(s->arg) &&
	    (opt_rule(migrecv_opt_name(s->arg)) || qemu_flag(migrecv_opt_name(s->arg))))
		return drop(v, NULL, 0, "is followed by an option, %s, where its "
			    "argument should be", s->arg);
	if (allowed(pol, s->name, strlen(s->name)))
		return true;
	r = opt_rule(s->name);
	if (!r)
		return drop(v, s->name, strlen(s->name), "is not on the allow-list");
	if (!strcmp(s->name, "display") && !strcmp(s->arg, "none"))
		return true;
	if (r->cls != GUEST)
		return drop(v, s->name, strlen(s->name), "%s", class_why[r->cls]);
	if (s->arg && s->arg[0] == '{')
		return drop(v, s->name, strlen(s->name), "is in JSON form, which "
			    "mig-recv does not check");
	return !s->arg || !bad_props(s->name, s->arg, pol, v);
}

/* One line on stderr: what was dropped, why, and how to keep it. */
static void note_dropped(const struct opt *s, const struct verdict *v)
{
	char *word = shown(s->word), *arg = shown(s->arg ? s->arg : "");
	char *allow = v->allow ? shown(v->allow) : NULL;
	char *name = shown(s->name ? s->name : ""), *id = shown(s->arg ? arg_id(s->arg) : "");
	const char *sp = s->arg ? " " : "";

	if (!allow)
		mig_warn("stdin: dropped from the stream: %s%s%s: %s", word, sp,
			 arg, v->why);
	else if (keyed_option(name) && *id)
		mig_warn("stdin: dropped from the stream: %s%s%s: %s (give -%s "
			 "id=%s yourself, or --allow %s)", word, sp, arg, v->why,
			 name, id, allow);
	else if (keyed_option(name))
		mig_warn("stdin: dropped from the stream: %s%s%s: %s (--allow %s)",
			 word, sp, arg, v->why, allow);
	else
		mig_warn("stdin: dropped from the stream: %s%s%s: %s (give -%s "
			 "yourself, or --allow %s)", word, sp, arg, v->why, name,
			 allow);
	free(word);
	free(arg);
	free(allow);
	free(name);
	free(id);
}

/* ---- The destination's command line ---- */

/* Whether an override of the user replaces the stream's option S: one of
 * the same name, or for -object, -device... one of the same kind and id. */
static bool superseded(const struct opt *s, const struct opt *oo, size_t no)
{
	for (size_t j = 0; s->name && j < no; j++) {
		const struct opt *u = &oo[j];
		if (!u->name || strcmp(s->name, u->name))
			continue;
		if (!keyed_option(u->name))
			return true;
		char sid[256];
		snprintf(sid, sizeof sid, "%s", s->arg ? arg_id(s->arg) : "");
		const char *uid = u->arg ? arg_id(u->arg) : "";
		if (*uid && !strcmp(sid, uid))
			return true;
	}
	return false;
}

/* V appended to OUT with its commas doubled (QEMU's escape). */
static void add_escaped(char *out, size_t cap, const char *v)
{
	size_t k = strlen(out);

	for (; *v && k + 2 < cap; v++) {
		if (*v == ',')
			out[k++] = ',';
		out[k++] = *v;
	}
	out[k] = '\0';
}

/* The same in QEMU's JSON form, as libvirt writes it:
 * {"qom-type":"memory-backend-*","id":X,"size":S,...}. */
static bool json_ram_backend(const struct opt *s, struct argv *out)
{
	json_t *o = json_loads(s->arg, 0, NULL), *nbo;
	const char *type = json_string_value(json_object_get(o, "qom-type"));
	const char *id = json_string_value(json_object_get(o, "id"));
	json_t *size = json_object_get(o, "size");
	char *nb = NULL;

	if (!type || strncmp(type, "memory-backend-", 15) || !type[15] || !id) {
		json_decref(o);
		return false;
	}
	nbo = json_pack("{s:s,s:s}", "qom-type", "memory-backend-ram", "id", id);
	if (nbo && json_is_integer(size))
		json_object_set(nbo, "size", size);
	if (nbo)
		nb = json_dumps(nbo, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(nbo);
	json_decref(o);
	if (!nb)
		return false;
	migrecv_av_push(out, s->word);
	migrecv_av_push(out, nb);
	free(nb);
	return true;
}

/* -object memory-backend-*,id=X,size=S,... becomes
 * memory-backend-ram,id=X,size=S: the same RAM block, anonymous memory
 * (the source's file, huge pages, host NUMA policy are the source's). */
static bool ram_backend(const struct opt *s, struct argv *out)
{
	char id[256], size[64], nb[1024] = "memory-backend-ram,id=";
	const char *p;
	struct prop pr;

	if (!s->name || strcmp(s->name, "object") || !s->arg)
		return false;
	if (s->arg[0] == '{')
		return json_ram_backend(s, out);
	p = s->arg;
	if (!next_prop(&p, true, &pr))
		return false;
	if (pr.key) { /* qom-type=..., wherever it stands */
		char type[64];
		arg_value(s->arg, "qom-type", type, sizeof type);
		if (strncmp(type, "memory-backend-", 15) || !type[15])
			return false;
	} else if (strncmp(pr.val, "memory-backend-", 15) || pr.vlen < 16)
		return false;
	arg_value(s->arg, "id", id, sizeof id);
	arg_value(s->arg, "size", size, sizeof size);
	add_escaped(nb, sizeof nb, id);
	if (*size) {
		strcat(nb, ",size="); /* fits: ids and sizes are bounded above */
		add_escaped(nb, sizeof nb, size);
	}
	migrecv_av_push(out, s->word);
	migrecv_av_push(out, nb);
	return true;
}

/* What the options kept and the overrides give of what QEMU would
 * otherwise take from the host by default. */
struct given {
	bool display, net, audio;
};

static void note_given(const struct opt *o, struct given *g)
{
	const struct opt_rule *r = o->name ? opt_rule(o->name) : NULL;

	if (!o->name)
		return;
	g->display |= r && r->cls == DISPLAY;
	g->net |= !strcmp(o->name, "nic") || !strcmp(o->name, "net") ||
		  !strcmp(o->name, "nodefaults");
	g->audio |= !strcmp(o->name, "audiodev");
}

/* The stream's options that pass, onto OUT; the others named (-v,
 * --dry-run) or counted. What they give is noted in *g. */
static void keep_stream_options(const struct opt *so, size_t ns,
				const struct opt *oo, size_t no,
				const struct recv_policy *pol, struct argv *out,
				struct given *g)
{
	size_t ndropped = 0;

	for (size_t i = 0; i < ns; i++) {
		const struct opt *s = &so[i];
		const struct opt_rule *r = s->name ? opt_rule(s->name) : NULL;
		struct verdict v = { 0 };
		if (superseded(s, oo, no) || (r && r->cls == OWN) ||
		    ram_backend(s, out))
			continue;
		if (judge(s, pol, &v)) {
			note_given(s, g);
			migrecv_av_push(out, s->word);
			if (s->arg)
				migrecv_av_push(out, s->arg);
			continue;
		}
		ndropped++;
		if (pol->notes)
			note_dropped(s, &v);
		free(v.why);
		free(v.allow);
	}
	if (ndropped && !pol->notes && !migrecv_quiet)
		mig_warn("stdin: %zu option%s from the stream dropped (-v or "
			 "--dry-run names them and why)", ndropped,
			 ndropped == 1 ? "" : "s");
}

/* The stream's command line (META qemu.argv) as strings, into *sv. */
static int stream_words(json_t *src, char ***sv, size_t *n)
{
	*n = json_array_size(src);
	if (*n == 0) {
		mig_warn("stdin: META qemu.argv is empty");
		return -1;
	}
	*sv = calloc(*n + 1, sizeof **sv);
	if (!*sv) {
		mig_warn("out of memory");
		exit(MIG_EXIT_SYS);
	}
	for (size_t i = 0; i < *n; i++) {
		const char *s = json_string_value(json_array_get(src, i));
		if (!s) {
			mig_warn("stdin: META qemu.argv is not an array of strings");
			return -1;
		}
		(*sv)[i] = (char *)s;
	}
	return 0;
}

/* -n and -v: which emulator the source ran, which this host runs, and why. */
static void note_emulator(const char *ran, const struct emulator *em)
{
	char *r = shown(ran), *runs = shown(em->path);

	mig_warn("stdin: the source ran %s; this host runs %s (%s)", r, runs,
		 em->from);
	free(r);
	free(runs);
}

/* What QEMU would take from the host by default, unless kept or given:
 * a display ("-display none"); a NIC on user-mode networking, which
 * reaches the host's network and its 127.0.0.1 ("-nic none"); the host's
 * sound system for a sound device without audiodev= ("-audiodev none").
 * Then the overrides, last ("-incoming -" is implied). */
static void add_overrides(const struct opt *oo, size_t no, struct given g,
			  struct argv *out)
{
	for (size_t j = 0; j < no; j++)
		note_given(&oo[j], &g);
	if (!g.display) {
		migrecv_av_push(out, "-display");
		migrecv_av_push(out, "none");
	}
	if (!g.net) {
		migrecv_av_push(out, "-nic");
		migrecv_av_push(out, "none");
	}
	if (!g.audio) {
		migrecv_av_push(out, "-audiodev");
		migrecv_av_push(out, "none,id=mig-recv-none");
	}
	for (size_t j = 0; j < no; j++) {
		if (oo[j].name && !strcmp(oo[j].name, "incoming"))
			continue;
		migrecv_av_push(out, oo[j].word);
		if (oo[j].arg)
			migrecv_av_push(out, oo[j].arg);
	}
}

/*
 * The destination's command line from the source's (META qemu.argv) and
 * the user's overrides (mig-recv(1)). The stream describes the guest;
 * the destination decides what runs on its host:
 *  - the emulator: the destination's (pick_emulator), never the stream's;
 *  - the stream's options: the source's own dropped silently (-incoming,
 *    -qmp, -monitor, -pidfile, -S...); memory backends become
 *    memory-backend-ram of the same id and size; the others pass only if
 *    they describe the guest machine and name no host resource (judge),
 *    or if --allow names them;
 *  - an override of -object/-device/-chardev/-netdev/-drive/-blockdev with
 *    id=X replaces the stream's option of that kind and id; without an id
 *    it is added; any other override replaces every stream option of that
 *    name; the overrides come last;
 *  - "-display none" unless a display is given.
 * Returns 0, or the exit status to leave with.
 */
int migrecv_from_stream(json_t *src, char **over, size_t nover,
			const struct recv_policy *pol, struct argv *out)
{
	char **sv = NULL;
	size_t n, used, ns, no;
	struct emulator em = { 0 };
	struct opt *so = NULL, *oo = NULL;
	int rc = MIG_EXIT_DATA;

	if (stream_words(src, &sv, &n) < 0)
		goto out;
	rc = MIG_EXIT_IO;
	if (pick_emulator(over, nover, pol, &em, &used) < 0)
		goto out;
	if (pol->notes)
		note_emulator(sv[0], &em);
	so = calloc(n + 1, sizeof *so);
	oo = calloc(nover + 1, sizeof *oo);
	if (!so || !oo) {
		mig_warn("out of memory");
		exit(MIG_EXIT_SYS);
	}
	migrecv_av_push(out, em.path);
	ns = split_opts(sv + 1, n - 1, so);
	no = split_opts(over + used, nover - used, oo);
	struct given g = { 0 };

	keep_stream_options(so, ns, oo, no, pol, out, &g);
	add_overrides(oo, no, g, out);
	rc = 0;
out:
	free(em.path);
	free(em.from);
	free(sv);
	free(so);
	free(oo);
	return rc;
}

/* S in bash's $'...' quotes, control characters as \xNN: still a word
 * for the shell, and nothing a terminal would obey. */
static void print_ansi_c(FILE *f, const char *s)
{
	fputs("$'", f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else if (*p == '\'' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else
			fputc(*p, f);
	fputc('\'', f);
}

void migrecv_print_quoted(FILE *f, char **v)
{
	for (size_t i = 0; v[i]; i++) {
		const char *s = v[i];
		bool plain = *s != '\0', control = false;
		for (const char *p = s; *p; p++) {
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789-_=,./:+@%", *p))
				plain = false;
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				control = true;
		}
		fputs(i ? " " : "", f);
		if (plain) {
			fputs(s, f);
			continue;
		}
		if (control) {
			print_ansi_c(f, s);
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
