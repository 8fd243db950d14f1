/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ssh-strict.c - the ssh_config(5) keywords mig-ssh applies itself, read
 * from the configuration files when -o does not give them:
 * StrictHostKeyChecking (libssh knows only yes/no and keeps it to itself),
 * ServerAliveInterval and ServerAliveCountMax (libssh ignores them) and
 * RevokedHostKeys (libssh does not know it).
 *
 * Host blocks are matched against the host as given, Include is followed,
 * and the first value of each keyword wins, as in ssh(1). A Match block
 * cannot be evaluated here and is skipped: the defaults stay (strict
 * checking, keepalives every 15 s).
 *
 * Apart because it is a second, small ssh_config(5) reader beside
 * libssh's, used for nothing else.
 */
#include <ctype.h>
#include <glob.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mig-ssh.h"

/* When neither -o nor a configuration says: a peer silent for
 * 15 s x (3 + 1) = 60 s is given up (tools/ssh-transfer.c). */
#define ALIVE_INTERVAL 15
#define ALIVE_COUNT 3

int migssh_parse_strict(const char *v, enum strict *out)
{
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "ask"))
		*out = STRICT_YES; /* batch mode: no one to ask */
	else if (!strcasecmp(v, "accept-new"))
		*out = STRICT_ACCEPT_NEW;
	else if (!strcasecmp(v, "no") || !strcasecmp(v, "off"))
		*out = STRICT_NO;
	else
		return -1;
	return 0;
}

int migssh_parse_alive(const char *v, bool count, long *out)
{
	char *end;
	long n;

	if (!isdigit((unsigned char)*v))
		return -1;
	n = strtol(v, &end, 10);
	if (*end || n < (count ? 1 : 0) || n > 86400)
		return -1;
	*out = n;
	return 0;
}

/* A RevokedHostKeys value: "none" for none, ~/ for the home directory. */
int migssh_set_revoked(struct cmdline *c, const char *v)
{
	const char *home = getenv("HOME");
	struct passwd *pw = getpwuid(getuid());

	if (c->revoked_set) /* the first one wins */
		return 0;
	c->revoked_set = true;
	if (!strcasecmp(v, "none"))
		return 0;
	if (pw && pw->pw_dir)
		home = pw->pw_dir;
	if (v[0] == '~' && v[1] == '/' && home) {
		if (asprintf(&c->revoked, "%s%s", home, v + 1) < 0)
			c->revoked = NULL;
	} else
		c->revoked = strdup(v);
	if (!c->revoked) {
		migssh_say("out of memory");
		return -1;
	}
	return 0;
}

static bool pattern_match(const char *pat, const char *s)
{
	if (!*pat)
		return !*s;
	if (*pat == '*') {
		for (;; s++) {
			if (pattern_match(pat + 1, s))
				return true;
			if (!*s)
				return false;
		}
	}
	if (!*s)
		return false;
	if (*pat == '?' || tolower((unsigned char)*pat) == tolower((unsigned char)*s))
		return pattern_match(pat + 1, s + 1);
	return false;
}

/* "Host a b !c": true if some pattern matches and no negated one does. */
static bool host_line_matches(char *list, const char *host)
{
	bool hit = false;
	char *save = NULL;

	for (char *p = strtok_r(list, " \t", &save); p; p = strtok_r(NULL, " \t", &save)) {
		if (*p == '!') {
			if (pattern_match(p + 1, host))
				return false;
		} else if (pattern_match(p, host))
			hit = true;
	}
	return hit;
}

static int keywords_from_file(const char *path, struct cmdline *c, int depth);

static int keywords_include(const char *arg, struct cmdline *c, int depth,
			    bool user_file)
{
	char pat[PATH_MAX];
	glob_t g;
	const char *home = getenv("HOME");
	struct passwd *pw = getpwuid(getuid());
	int rc = 0;

	if (pw && pw->pw_dir)
		home = pw->pw_dir;
	if (arg[0] == '~' && arg[1] == '/' && home)
		snprintf(pat, sizeof pat, "%s%s", home, arg + 1);
	else if (arg[0] == '/')
		snprintf(pat, sizeof pat, "%s", arg);
	else if (user_file && home)
		snprintf(pat, sizeof pat, "%s/.ssh/%s", home, arg);
	else
		snprintf(pat, sizeof pat, "/etc/ssh/%s", arg);
	if (glob(pat, 0, NULL, &g) != 0)
		return 0;
	for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
		rc = keywords_from_file(g.gl_pathv[i], c, depth + 1);
	globfree(&g);
	return rc;
}

/* One "Keyword value" of ours, in an active block; -1 with a message on a
 * value ssh(1) would refuse too. */
static int keyword(struct cmdline *c, const char *k, const char *v,
		   const char *path, int lineno)
{
	if (!strcasecmp(k, "StrictHostKeyChecking")) {
		if (c->strict == STRICT_UNSET && migssh_parse_strict(v, &c->strict) < 0)
			c->strict = STRICT_YES; /* unknown: the safe one */
	} else if (!strcasecmp(k, "ServerAliveInterval") ||
		   !strcasecmp(k, "ServerAliveCountMax")) {
		bool count = !strcasecmp(k, "ServerAliveCountMax");
		long *slot = count ? &c->alive_count : &c->alive_interval;
		if (*slot < 0 && migssh_parse_alive(v, count, slot) < 0) {
			migssh_say("configuration %s line %d: %s '%s': not a "
				"number from %d to 86400", path, lineno, k, v,
				count ? 1 : 0);
			return -1;
		}
	} else if (!strcasecmp(k, "RevokedHostKeys"))
		return migssh_set_revoked(c, v);
	return 0;
}

static int keywords_from_file(const char *path, struct cmdline *c, int depth)
{
	FILE *f;
	char line[4096];
	bool active = true, user_file = !strstr(path, "/etc/ssh/");
	int lineno = 0, rc = 0;

	if (depth > 8 || !(f = fopen(path, "re")))
		return 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		char *k = line + strspn(line, " \t");
		size_t klen = strcspn(k, " \t=\r\n");
		char *v = k + klen;

		lineno++;
		if (*k == '#' || klen == 0)
			continue;
		v += strspn(v, " \t");
		if (*v == '=')
			v++;
		v += strspn(v, " \t");
		v[strcspn(v, "\r\n")] = '\0';
		for (size_t n = strlen(v); n && (v[n - 1] == ' ' || v[n - 1] == '\t');)
			v[--n] = '\0';
		k[klen] = '\0';
		if (!strcasecmp(k, "Host"))
			active = host_line_matches(v, c->host);
		else if (!strcasecmp(k, "Match"))
			active = !strcasecmp(v, "all");
		else if (active && !strcasecmp(k, "Include")) {
			char *save = NULL;
			for (char *p = strtok_r(v, " \t", &save); p && rc == 0;
			     p = strtok_r(NULL, " \t", &save))
				rc = keywords_include(p, c, depth, user_file);
		} else if (active)
			rc = keyword(c, k, v, path, lineno);
	}
	fclose(f);
	return rc;
}

/* Fill in what -o left unset from -F's file, or from ~/.ssh/config then
 * /etc/ssh/ssh_config, then the defaults. Returns 0, or -1 with a message. */
int migssh_config_keywords(struct cmdline *c)
{
	struct passwd *pw = getpwuid(getuid());
	char path[PATH_MAX];
	int rc;

	if (c->config)
		rc = keywords_from_file(c->config, c, 0);
	else {
		rc = 0;
		if (pw && pw->pw_dir) {
			snprintf(path, sizeof path, "%s/.ssh/config", pw->pw_dir);
			rc = keywords_from_file(path, c, 0);
		}
		if (rc == 0)
			rc = keywords_from_file("/etc/ssh/ssh_config", c, 0);
	}
	if (c->strict == STRICT_UNSET)
		c->strict = STRICT_YES;
	if (c->alive_interval < 0)
		c->alive_interval = ALIVE_INTERVAL;
	if (c->alive_count < 0)
		c->alive_count = ALIVE_COUNT;
	return rc;
}
