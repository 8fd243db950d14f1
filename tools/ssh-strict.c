/*
 * ssh-strict.c - StrictHostKeyChecking: its values, and its setting read
 * from the configuration files when -o does not give it.
 *
 * libssh's parser knows only yes/no for it and keeps it to itself, so the
 * files are read here for that one keyword: Host blocks matched against
 * the host as given, Include followed, the first value wins. A Match block
 * cannot be evaluated here and is skipped: the default stays strict.
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

static void strict_from_file(const char *path, const char *host,
			     enum strict *out, int depth);

static void strict_include(const char *arg, const char *host, enum strict *out,
			   int depth, bool user_file)
{
	char pat[PATH_MAX];
	glob_t g;
	const char *home = getenv("HOME");
	struct passwd *pw = getpwuid(getuid());

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
		return;
	for (size_t i = 0; i < g.gl_pathc && *out == STRICT_UNSET; i++)
		strict_from_file(g.gl_pathv[i], host, out, depth + 1);
	globfree(&g);
}

static void strict_from_file(const char *path, const char *host,
			     enum strict *out, int depth)
{
	FILE *f;
	char line[4096];
	bool active = true, user_file = !strstr(path, "/etc/ssh/");

	if (depth > 8 || !(f = fopen(path, "re")))
		return;
	while (*out == STRICT_UNSET && fgets(line, sizeof line, f)) {
		char *k = line + strspn(line, " \t");
		size_t klen = strcspn(k, " \t=\r\n");
		char *v = k + klen;

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
			active = host_line_matches(v, host);
		else if (!strcasecmp(k, "Match"))
			active = !strcasecmp(v, "all");
		else if (active && !strcasecmp(k, "Include")) {
			char *save = NULL;
			for (char *p = strtok_r(v, " \t", &save); p && *out == STRICT_UNSET;
			     p = strtok_r(NULL, " \t", &save))
				strict_include(p, host, out, depth, user_file);
		} else if (active && !strcasecmp(k, "StrictHostKeyChecking")) {
			if (migssh_parse_strict(v, out) < 0)
				*out = STRICT_YES;
		}
	}
	fclose(f);
}

enum strict migssh_strict_from_config(const struct cmdline *c)
{
	enum strict s = STRICT_UNSET;
	struct passwd *pw = getpwuid(getuid());
	char path[PATH_MAX];

	if (c->config)
		strict_from_file(c->config, c->host, &s, 0);
	else {
		if (pw && pw->pw_dir) {
			snprintf(path, sizeof path, "%s/.ssh/config", pw->pw_dir);
			strict_from_file(path, c->host, &s, 0);
		}
		if (s == STRICT_UNSET)
			strict_from_file("/etc/ssh/ssh_config", c->host, &s, 0);
	}
	return s == STRICT_UNSET ? STRICT_YES : s;
}
